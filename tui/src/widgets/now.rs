//! "Now": the latest utterance's distribution and how ambiguous it is.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Widget, Wrap},
};

use super::bars::Bars;
use crate::palette::{self, Palette};
use crate::view::{Ambiguity, ViewState, clock, normalised_entropy, top_two};

/// The Now panel.
pub struct NowPanel<'a> {
    /// What to draw.
    pub view: &'a ViewState,
    /// Label colours and letters.
    pub palette: &'a Palette,
}

/// A probability difference in percentage points, e.g. "1 pt", "25 pts".
fn points(diff: f32) -> String {
    let pts = (diff * 100.0).round();
    if pts == 1.0 {
        "1 pt".to_string()
    } else {
        format!("{pts:.0} pts")
    }
}

/// The ambiguity readout line: the word plus the numbers it is based on.
///
/// Used by Now and Rolling so both panels read the same way.
/// `detail` appends the two labels and their percentages.
pub fn ambiguity_line<'a>(labels: &[String], probs: &[f32], detail: bool) -> Line<'a> {
    let entropy = normalised_entropy(probs) as f32;
    let Some((a, b)) = top_two(probs) else {
        return Line::raw("");
    };
    let (margin, second) = match b {
        Some(b) => (probs[a] - probs[b], Some(b)),
        None => (probs[a], None),
    };
    let amb = Ambiguity::classify(margin, entropy);
    let name = |i: usize| labels.get(i).map_or("?", String::as_str);
    let mut spans = vec![
        Span::styled(
            amb.word().to_uppercase(),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(
            " · entropy {entropy:.2} · margin {}",
            points(margin)
        )),
    ];
    if let Some(b) = second.filter(|_| detail) {
        spans.push(Span::styled(
            format!(
                " ({} {:.0} / {} {:.0})",
                name(a),
                probs[a] * 100.0,
                name(b),
                probs[b] * 100.0
            ),
            palette::dim(),
        ));
    }
    Line::from(spans)
}

impl Widget for NowPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let who = self
            .view
            .latest
            .as_ref()
            .and_then(|u| u.speaker.as_deref())
            .map_or(String::new(), |s| format!(" {s} ·"));
        let title = match &self.view.latest {
            Some(u) => format!(
                "{who} Now · #{} · {} +{:.1} s · {} ",
                u.id,
                clock(u.start_s),
                u.duration_s(),
                u.method
            ),
            None => " Now ".to_string(),
        };
        let block = Block::bordered().title(title);
        let inner = block.inner(area);
        block.render(area, buf);
        let Some(latest) = &self.view.latest else {
            Paragraph::new(vec![
                Line::raw("Waiting for the first utterance…"),
                Line::styled(
                    "Speak, or check the Voice panel's level meter.",
                    palette::dim(),
                ),
            ])
            .wrap(Wrap { trim: true })
            .render(inner, buf);
            return;
        };
        let k = self.view.labels.len() as u16;
        let bars_h = k.min(inner.height.saturating_sub(1));
        Bars {
            labels: &self.view.labels,
            probs: &latest.probs,
            palette: self.palette,
        }
        .render(
            Rect {
                height: bars_h,
                ..inner
            },
            buf,
        );
        if inner.height > bars_h {
            Paragraph::new(ambiguity_line(&self.view.labels, &latest.probs, true))
                .wrap(Wrap { trim: true })
                .render(
                    Rect {
                        y: inner.y + bars_h,
                        height: inner.height - bars_h,
                        ..inner
                    },
                    buf,
                );
        }
    }
}
