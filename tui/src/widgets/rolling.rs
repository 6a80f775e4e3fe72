//! "Rolling": the time-decayed distribution (or a trailing window, or the session)
//! and the dominant emotion with its latest change, as the aggregator computed them.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Widget, Wrap},
};

use super::bars::Bars;
use super::now::ambiguity_line;
use crate::palette::{self, Palette};
use crate::view::{Rolling, RollingWindow, ViewState, clock, duration_name};

/// The Rolling panel.
pub struct RollingPanel<'a> {
    /// What to draw.
    pub view: &'a ViewState,
    /// Which window is selected.
    pub window: RollingWindow,
    /// Label colours and letters.
    pub palette: &'a Palette,
}

/// Window tabs; the selected one is bracketed (not only highlighted).
fn tabs<'a>(rolling: &Rolling, selected: RollingWindow) -> Line<'a> {
    let mut spans = vec![Span::raw(" Rolling ")];
    for w in rolling.all() {
        let name = rolling.tab_name(w);
        if w == selected {
            spans.push(Span::styled(
                format!("[{name}]"),
                Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED),
            ));
        } else {
            spans.push(Span::styled(format!(" {name} "), palette::dim()));
        }
    }
    spans.push(Span::raw(" (w) "));
    Line::from(spans)
}

impl Widget for RollingPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let rolling = &self.view.rolling;
        let dist = rolling.get(self.window);
        let stats = match self.window {
            RollingWindow::Decayed => format!(
                " half-life {} · {} utt ",
                duration_name(rolling.half_life_s),
                dist.utterances
            ),
            _ => format!(" {} utt · {:.0} s speech ", dist.utterances, dist.speech_s),
        };
        let block = Block::bordered()
            .title(tabs(rolling, self.window))
            .title_bottom(Line::styled(stats, palette::dim()).right_aligned());
        let inner = block.inner(area);
        block.render(area, buf);
        if dist.probs.is_empty() {
            let what = match self.window {
                RollingWindow::Trailing(_) => {
                    format!("No speech in the last {}.", rolling.tab_name(self.window))
                }
                _ => "No utterances yet this session.".to_string(),
            };
            Paragraph::new(vec![
                Line::raw(what),
                Line::styled("Press w for another window.", palette::dim()),
            ])
            .wrap(Wrap { trim: true })
            .render(inner, buf);
            return;
        }
        let labels = &self.view.labels;
        let k = labels.len() as u16;
        let bars_h = k.min(inner.height.saturating_sub(2));
        Bars {
            labels,
            probs: &dist.probs,
            palette: self.palette,
        }
        .render(
            Rect {
                height: bars_h,
                ..inner
            },
            buf,
        );
        let name = |i: usize| labels.get(i).map_or("?", String::as_str);
        let mut lines = Vec::new();
        if let Some(dominant) = rolling.dominant {
            let mut spans = vec![
                Span::raw("dominant "),
                Span::styled(
                    name(dominant).to_string(),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
            ];
            match rolling.last_change {
                Some(s) if s.to == dominant => spans.push(Span::raw(format!(
                    " since {} (was {})",
                    clock(s.at_s),
                    name(s.from)
                ))),
                Some(_) => {}
                None => spans.push(Span::styled(" · no change yet", palette::dim())),
            }
            lines.push(Line::from(spans));
        }
        lines.push(ambiguity_line(labels, &dist.probs, false));
        Paragraph::new(lines).render(
            Rect {
                y: inner.y + bars_h,
                height: inner.height.saturating_sub(bars_h),
                ..inner
            },
            buf,
        );
    }
}
