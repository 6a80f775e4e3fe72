//! "Voice": input level, VAD state, speech length and the latest utterance's prosody.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Widget},
};

use super::bars::bar_text;
use crate::palette;
use crate::view::{VadState, ViewState};

/// The Voice panel.
pub struct VoicePanel<'a> {
    /// What to draw.
    pub view: &'a ViewState,
}

/// Level meter range: −60 dBFS (empty) to 0 dBFS (full).
const FLOOR_DB: f32 = -60.0;

impl Widget for VoicePanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let block = Block::bordered().title(" Voice ");
        let inner = block.inner(area);
        block.render(area, buf);
        let v = &self.view.voice;
        let meter_w = inner.width.saturating_sub(20).min(30);
        let level = match v.level_db {
            Some(db) => {
                let frac = ((db - FLOOR_DB) / -FLOOR_DB).clamp(0.0, 1.0);
                let bar = bar_text(frac, meter_w);
                let pad = " ".repeat(usize::from(meter_w).saturating_sub(bar.chars().count()));
                Line::from(vec![
                    Span::raw("level  ▕"),
                    Span::raw(bar),
                    Span::raw(pad),
                    Span::raw(format!("▏{db:>4.0} dBFS")),
                ])
            }
            None => Line::from(vec![
                Span::raw("level  "),
                Span::styled(
                    if self.view.is_replay {
                        "— (logged during speech only)"
                    } else {
                        "— (no input level)"
                    },
                    palette::dim(),
                ),
            ]),
        };
        let vad_style = match v.vad {
            VadState::Speech => Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED),
            VadState::Processing => Style::default().add_modifier(Modifier::BOLD),
            VadState::Listening => Style::default(),
        };
        let mut vad = vec![
            Span::raw("VAD    "),
            Span::styled(format!("[{}]", v.vad.word()), vad_style),
        ];
        if v.vad == VadState::Speech {
            vad.push(Span::raw(format!(" {:.1} s", v.speech_s)));
        }
        if self.view.paused {
            vad.push(Span::styled(" (paused)", palette::dim()));
        }
        let mut lines = vec![level, Line::from(vad)];
        match &v.prosody {
            Some(p) => {
                let hz = |x: Option<f32>| x.map_or("—".to_string(), |x| format!("{x:.0} Hz"));
                lines.push(Line::raw(format!(
                    "pitch  {} · range {} · voiced {:.0}%",
                    hz(p.f0_median_hz),
                    hz(p.f0_range_hz),
                    p.voiced_fraction * 100.0
                )));
                let energy = match (p.energy_db_mean, p.energy_db_var) {
                    (Some(m), Some(v)) => format!("{m:.0}±{:.0} dB", v.max(0.0).sqrt()),
                    (Some(m), None) => format!("{m:.0} dB"),
                    _ => "—".to_string(),
                };
                let rate = p
                    .speaking_rate_syll_s
                    .map_or("—".to_string(), |r| format!("{r:.1}"));
                let pauses = p
                    .pause_ratio
                    .map_or("—".to_string(), |r| format!("{:.0}%", r * 100.0));
                lines.push(Line::raw(format!(
                    "energy {energy} · {rate} syl/s · pause {pauses}"
                )));
            }
            None => lines.push(Line::styled(
                "prosody: none for this utterance",
                palette::dim(),
            )),
        }
        Paragraph::new(lines).render(inner, buf);
    }
}
