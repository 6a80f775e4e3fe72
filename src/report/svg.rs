//! The report's plots as SVG: each panel of [`super::plots`] as its own `<svg
//! class="plot …">` for the HTML report, or all of them in one document for
//! `-o report.svg`; and the small helpers the HTML report shares with them.

use super::data::SessionData;
use super::plots::{PANELS, Panel, WIDTH, draw_report, draw_speaker, report_height};
use crate::plotting::{PlotError, svg_string};

/// Colour per label: the dashboard's semantic colours (same words, same hues),
/// a fallback cycle for other label sets.
pub fn label_colour(label: &str, index: usize) -> &'static str {
    match label.to_ascii_lowercase().as_str() {
        "neutral" | "calm" => "#9e9e9e",
        "happy" | "joy" | "happiness" => "#f2c200",
        "sad" | "sadness" => "#3b6fd8",
        "angry" | "anger" => "#d83b3b",
        "fear" | "fearful" => "#b040c0",
        "disgust" | "disgusted" => "#3ba55c",
        "surprise" | "surprised" => "#20b5c8",
        _ => [
            "#7fb3ff", "#ffd27f", "#e08fe0", "#8fe08f", "#7fe0e0", "#ff8f8f",
        ][index % 6],
    }
}

/// Escapes text for SVG/HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `mm:ss` or `h:mm:ss`, as the dashboard writes times.
pub use crate::aggregate::clock;

/// One panel as an `<svg class="plot {kind}">` element; a panel that cannot be
/// drawn becomes a note saying so (the rest of the report is still useful).
fn panel(data: &SessionData, p: Panel) -> String {
    let class = format!("plot {}", p.class());
    svg_string(&p.title(data), (WIDTH, p.height()), &class, |area| {
        p.draw(area, data)
    })
    .unwrap_or_else(|e| format!("<p class=\"note\">{}</p>\n", esc(&e.to_string())))
}

/// Emotions per utterance: one stacked column per utterance, spanning its time.
pub fn emotions(data: &SessionData) -> String {
    panel(data, Panel::Emotions)
}

/// One speaker's emotions per utterance (see [`super::plots::draw_speaker`]), as
/// `<svg class="plot emotions speaker">`.
pub fn speaker_emotions(data: &SessionData, speaker: &str) -> String {
    speaker_panel(
        data,
        speaker,
        Panel::Emotions,
        &format!("{speaker}'s emotions"),
    )
}

/// One speaker's rolling distribution (see [`super::plots::draw_speaker`]), as
/// `<svg class="plot decayed speaker">`.
pub fn speaker_decayed(data: &SessionData, speaker: &str) -> String {
    speaker_panel(
        data,
        speaker,
        Panel::Decayed,
        &format!("{speaker}'s rolling distribution"),
    )
}

/// `speaker`'s own panel of the kind `like`; a note if it cannot be drawn.
fn speaker_panel(data: &SessionData, speaker: &str, like: Panel, title: &str) -> String {
    let class = format!("plot {} speaker", like.class());
    svg_string(title, (WIDTH, like.height()), &class, |area| {
        draw_speaker(area, data, speaker, like)
    })
    .unwrap_or_else(|e| format!("<p class=\"note\">{}</p>\n", esc(&e.to_string())))
}

/// The time-decayed distribution over time, stacked.
pub fn decayed(data: &SessionData) -> String {
    panel(data, Panel::Decayed)
}

/// Ambiguity: utterance entropy, rolling entropy and top-2 margin.
pub fn ambiguity(data: &SessionData) -> String {
    panel(data, Panel::Ambiguity)
}

/// Prosody trends: one panel per descriptor, same time axis.
pub fn prosody(data: &SessionData) -> String {
    PANELS
        .iter()
        .filter(|p| matches!(p, Panel::Prosody(_)))
        .map(|&p| panel(data, p))
        .collect()
}

/// All plots as one standalone SVG document (for `-o report.svg`).
pub fn standalone(data: &SessionData, title: &str) -> Result<String, PlotError> {
    let svg = svg_string("the SVG report", (WIDTH, report_height()), "", |area| {
        draw_report(area, data, title)
    })?;
    Ok(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{svg}"))
}

/// The time-decayed distribution as known at time `t` (utterances ended by `t`).
pub fn decayed_at(data: &SessionData, t: f64) -> Option<Vec<f64>> {
    data.decayed_at(t).map(|s| s.probs.clone())
}

/// "happy 62%, neutral 20%, …" (labels by decreasing probability).
pub fn describe(labels: &[String], probs: &[f64]) -> String {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order
        .iter()
        .take(3)
        .map(|&i| format!("{} {:.0}%", labels[i], probs[i] * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}
