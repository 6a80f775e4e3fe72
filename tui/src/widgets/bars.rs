//! Labelled horizontal probability bars, shared by the Now and Rolling panels.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::Widget,
};

use crate::palette::{self, Palette};
use crate::view::top_two;

/// Eighth-block glyphs for the fractional end of a bar.
const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];

/// One bar per label, in label order (positions never move, so the eye can track
/// a label); the most probable label is marked with `▶` and drawn bold.
pub struct Bars<'a> {
    /// Label names.
    pub labels: &'a [String],
    /// Probabilities (same order).
    pub probs: &'a [f32],
    /// Colours and letters.
    pub palette: &'a Palette,
}

/// Text of a bar `fraction` (0–1) of `width` cells, with eighth-cell resolution.
pub fn bar_text(fraction: f32, width: u16) -> String {
    let eighths = (fraction.clamp(0.0, 1.0) * f32::from(width) * 8.0).round() as usize;
    let full = eighths / 8;
    let mut s = "█".repeat(full);
    s.push_str(PARTIAL[eighths % 8]);
    s
}

impl Widget for Bars<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let name_w = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
            .min(12);
        let top = top_two(self.probs).map(|(a, _)| a);
        // "▶ name     N " + bar + " 100%"
        let fixed = 2 + name_w as u16 + 3 + 5;
        let bar_w = area.width.saturating_sub(fixed);
        for (i, label) in self.labels.iter().enumerate().take(area.height as usize) {
            let p = self.probs.get(i).copied().unwrap_or(0.0);
            let is_top = top == Some(i);
            let name: String = label.chars().take(name_w).collect();
            let name_style = if is_top {
                Style::default().add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            let bar = bar_text(p, bar_w);
            let pad = " ".repeat(usize::from(bar_w).saturating_sub(bar.chars().count()));
            let line = Line::from(vec![
                Span::raw(if is_top { "▶ " } else { "  " }),
                Span::styled(format!("{name:<name_w$} "), name_style),
                Span::styled(self.palette.letter(i).to_string(), self.palette.block(i)),
                Span::raw(" "),
                Span::styled(bar, self.palette.fg(i)),
                Span::styled(pad, palette::dim()),
                Span::styled(format!("{:>4.0}%", p * 100.0), name_style),
            ]);
            line.render(
                Rect {
                    y: area.y + i as u16,
                    height: 1,
                    ..area
                },
                buf,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_resolution() {
        assert_eq!(bar_text(0.0, 10), "");
        assert_eq!(bar_text(1.0, 4), "████");
        assert_eq!(bar_text(0.5, 3), "█▌");
    }
}
