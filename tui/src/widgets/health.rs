//! "Health": model, device, latency and every loss counter (never hidden).

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::{Line, Span},
    widgets::{Block, Paragraph, Widget},
};

use crate::palette;
use crate::view::ViewState;

/// The Health panel.
pub struct HealthPanel<'a> {
    /// What to draw.
    pub view: &'a ViewState,
}

fn ms(x: Option<f64>) -> String {
    x.map_or("—".to_string(), |x| format!("{x:.0}"))
}

impl Widget for HealthPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let block = Block::bordered().title(" Health ");
        let inner = block.inner(area);
        block.render(area, buf);
        let h = &self.view.health;
        let or_dash = |s: &str| {
            if s.is_empty() {
                "—".to_string()
            } else {
                s.to_string()
            }
        };
        let mut lines = vec![
            Line::raw(format!(
                "model  {} · {}",
                or_dash(&h.model),
                or_dash(&h.device)
            )),
            Line::raw(format!(
                "lat ms last {} · p50 {} · p95 {}",
                ms(h.latency_last_ms),
                ms(h.latency_p50_ms),
                ms(h.latency_p95_ms)
            )),
            Line::raw(format!(
                "queue  {} · RTF {}",
                h.queue_depth,
                h.real_time_factor
                    .map_or("—".to_string(), |r| format!("{r:.2}"))
            )),
        ];
        // Losses: plain text when zero, a reversed "⚠ … LOST" warning otherwise.
        let mut loss = Vec::new();
        if h.dropped_samples > 0 {
            loss.push(Span::styled(
                format!("⚠ DROPPED {} samples", h.dropped_samples),
                palette::warning(),
            ));
        } else {
            loss.push(Span::raw("dropped 0 samples"));
        }
        loss.push(Span::raw(" · "));
        if h.skipped_utterances > 0 {
            loss.push(Span::styled(
                format!("⚠ SKIPPED {} utt", h.skipped_utterances),
                palette::warning(),
            ));
        } else {
            loss.push(Span::raw("skipped 0 utt"));
        }
        lines.push(Line::from(loss));
        Paragraph::new(lines).render(inner, buf);
    }
}
