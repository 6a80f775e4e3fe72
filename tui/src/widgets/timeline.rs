//! "Timeline": one column per utterance, newest on the right.
//!
//! With room, each label gets a sparkline row (height of the glyph = probability) under
//! a "top" row that spells the dominant label's letter per utterance; with little room
//! only the "top" row is drawn. An "ambiguity" row draws each utterance's normalised
//! entropy (row "mixed": tall = mixed) when there is room. Markers sit on their own row as `▲`.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::{Block, Paragraph, Widget},
};

use crate::palette::{self, Palette};
use crate::view::{ViewState, clock, normalised_entropy, speaker_mark, top_two};

/// Sparkline glyphs from 0 to 1 in eighths.
const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The Timeline panel.
pub struct TimelinePanel<'a> {
    /// What to draw.
    pub view: &'a ViewState,
    /// Label colours and letters.
    pub palette: &'a Palette,
}

impl Widget for TimelinePanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let view = self.view;
        let labels = &view.labels;
        let name_w = labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(7, 10);
        let prefix_w = name_w + 3;
        let inner_w = area.width.saturating_sub(2) as usize;
        let plot_w = inner_w.saturating_sub(prefix_w).max(1);
        // Few utterances on a wide screen: widen columns (up to 3 cells) to use the room.
        let col_w = (plot_w / view.timeline.len().max(1)).clamp(1, 3);
        let cols = plot_w / col_w;
        let offset = view.timeline.len().saturating_sub(cols);
        let shown = &view.timeline[offset..];

        let hidden = view
            .markers
            .iter()
            .filter(|m| {
                offset > 0 && view.timeline.partition_point(|e| e.start_s < m.at_s) < offset
            })
            .count();
        let mut title = match (shown.first(), shown.last()) {
            (Some(first), Some(last)) => format!(
                " Timeline · {}–{} · {} of {} utterances, {} each ",
                clock(first.start_s),
                clock(last.end_s),
                shown.len(),
                view.timeline.len(),
                if col_w == 1 {
                    "one column".to_string()
                } else {
                    format!("{col_w} columns")
                }
            ),
            _ => " Timeline ".to_string(),
        };
        let n = view.markers.len();
        if n > 0 {
            title.push_str(&format!(
                "· {n} marker{} ▲{} ",
                if n == 1 { "" } else { "s" },
                if hidden > 0 {
                    format!(" ({hidden} off-screen)")
                } else {
                    String::new()
                }
            ));
        }
        let block = Block::bordered().title(title);
        let inner = block.inner(area);
        block.render(area, buf);
        if view.timeline.is_empty() && view.markers.is_empty() {
            Line::styled(
                "Utterances will appear here, one column each.",
                palette::dim(),
            )
            .render(inner, buf);
            return;
        }

        let prefix = |name: &str, letter: Option<usize>| -> Vec<Span<'static>> {
            let name: String = name.chars().take(name_w).collect();
            let mut v = vec![Span::raw(format!("{name:<name_w$} "))];
            match letter {
                Some(i) => v.push(Span::styled(
                    self.palette.letter(i).to_string(),
                    self.palette.block(i),
                )),
                None => v.push(Span::raw(" ")),
            }
            v.push(Span::raw(" "));
            v
        };

        let mut lines: Vec<Line> = Vec::new();
        // Dominant letter per column: the band that survives every size.
        let mut top_row = prefix("top", None);
        for e in shown {
            match top_two(&e.probs) {
                Some((i, _)) => top_row.push(Span::styled(
                    self.palette.letter(i).to_string().repeat(col_w),
                    self.palette.block(i),
                )),
                None => top_row.push(Span::raw("?".repeat(col_w))),
            }
        }
        lines.push(Line::from(top_row));
        // Who spoke each column, when speakers are tracked.
        let speaker_row = usize::from(!view.speakers.is_empty());
        if speaker_row == 1 {
            let mut row = prefix("speaker", None);
            let cells: String = shown
                .iter()
                .flat_map(|e| {
                    let mark = e.speaker.as_deref().map_or(' ', speaker_mark);
                    std::iter::repeat_n(mark, col_w)
                })
                .collect();
            row.push(Span::styled(cells, Style::default()));
            lines.push(Line::from(row));
        }

        // Row budget, by priority: top, speaker, markers, per-label rows (all or none),
        // ambiguity.
        let height = inner.height as usize - speaker_row.min(inner.height as usize);
        let full = height >= labels.len() + 2;
        let ambiguity_row = height >= if full { labels.len() + 3 } else { 3 };
        if ambiguity_row {
            let mut row = prefix("mixed", None);
            let cells: String = shown
                .iter()
                .flat_map(|e| {
                    std::iter::repeat_n(
                        LEVELS[(normalised_entropy(&e.probs) * 8.0).round() as usize],
                        col_w,
                    )
                })
                .collect();
            row.push(Span::raw(cells));
            lines.push(Line::from(row));
        }
        if full {
            // Tall terminals: give each label several rows, so small differences show.
            let spare = height.saturating_sub(labels.len() + 2 + usize::from(ambiguity_row));
            let rows_per_label = (1 + spare / labels.len().max(1)).min(4);
            for (i, label) in labels.iter().enumerate() {
                for r in (0..rows_per_label).rev() {
                    // Row r (0 = bottom) shows the part of p above r/rows_per_label.
                    let mut row = if r == 0 {
                        prefix(label, Some(i))
                    } else {
                        prefix("", None)
                    };
                    let cells: String = shown
                        .iter()
                        .flat_map(|e| {
                            let p = e.probs.get(i).copied().unwrap_or(0.0).clamp(0.0, 1.0);
                            let eighths = (p * (rows_per_label * 8) as f32).round() as usize;
                            std::iter::repeat_n(LEVELS[eighths.saturating_sub(r * 8).min(8)], col_w)
                        })
                        .collect();
                    row.push(Span::styled(cells, self.palette.fg(i)));
                    lines.push(Line::from(row));
                }
            }
        }

        // Markers: at the column of the first utterance starting after the marker.
        let mut marks = vec![' '; plot_w];
        for m in &view.markers {
            let idx = view.timeline.partition_point(|e| e.start_s < m.at_s);
            if idx < offset && offset > 0 {
                continue;
            }
            let col = ((idx - offset.min(idx)) * col_w).min(plot_w - 1);
            marks[col] = '▲';
        }
        if inner.height as usize > lines.len() {
            let mut row = prefix("markers", None);
            row.push(Span::styled(
                marks.iter().collect::<String>().trim_end().to_string(),
                Style::default(),
            ));
            lines.push(Line::from(row));
        }
        Paragraph::new(lines).render(inner, buf);
    }
}
