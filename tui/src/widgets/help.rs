//! The `?` help overlay: keys, the label legend and how to read the numbers.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Flex, Layout, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Widget, Wrap},
};

use crate::palette::Palette;

/// The help popup, centred over whatever is below.
pub struct HelpOverlay<'a> {
    /// Label names for the legend.
    pub labels: &'a [String],
    /// Label colours and letters.
    pub palette: &'a Palette,
}

impl Widget for HelpOverlay<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let bold = Style::default().add_modifier(Modifier::BOLD);
        let key = |k: &'static str, what: &'static str| {
            Line::from(vec![
                Span::styled(format!("  {k:<7}"), bold),
                Span::raw(what),
            ])
        };
        let mut lines = vec![
            Line::styled("Keys", bold),
            key("q", "quit (also Ctrl-C)"),
            key("space", "pause / resume listening (replay: playback)"),
            key("m", "add a marker at the current time"),
            key("w", "cycle rolling: decayed → 30 s → 2 min → session"),
            key("s", "next speaker in focus (sessions that track speakers)"),
            key("?", "show / hide this help (Esc also hides)"),
            Line::raw(""),
            Line::styled("Labels", bold),
        ];
        let mut legend = vec![Span::raw("  ")];
        for (i, l) in self.labels.iter().enumerate() {
            legend.push(Span::styled(
                self.palette.letter(i).to_string(),
                self.palette.block(i),
            ));
            legend.push(Span::raw(format!(" {l}  ")));
        }
        lines.push(Line::from(legend));
        lines.extend([
            Line::raw(""),
            Line::styled("Reading the numbers", bold),
            Line::raw("  Bars are probabilities from the model's emotion-word logits."),
            Line::raw("  entropy: 0 = one label, 1 = all equal (H / ln K)."),
            Line::raw("  top-2 margin: points between the two most likely labels."),
            Line::raw("  MIXED = margin < 30 pts or entropy > 0.75; LEANING = margin"),
            Line::raw("  < 50 pts; CLEAR otherwise. Mixed means no single reading."),
            Line::raw("  ▶ marks the most likely label; ▲ marks your markers."),
        ]);
        let h = (lines.len() as u16 + 2).min(area.height);
        let w = 72.min(area.width);
        let [popup] = Layout::vertical([Constraint::Length(h)])
            .flex(Flex::Center)
            .areas(area);
        let [popup] = Layout::horizontal([Constraint::Length(w)])
            .flex(Flex::Center)
            .areas(popup);
        Clear.render(popup, buf);
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" Help · ? or Esc to close "))
            .render(popup, buf);
    }
}
