//! `emomon report` and `emomon export`: a session log turned into something a
//! clinician or researcher reads after the session.
//!
//! The HTML report is one self-contained file (inline CSS and SVG, no scripts, no
//! network): header with source, model and losses; the plots of [`svg`]; a summary
//! table per label (whole session, time-decayed at the end, last 30 s and 2 min);
//! one per speaker when the session tracked speakers; a table per consecutive window; dominant-emotion changes; markers with the
//! rolling distribution at that moment; and any problems found reading the log.

pub mod csv;
pub mod data;
pub mod plots;
pub mod png;
pub mod svg;

use std::fmt::Write;

use crate::utc::utc_string;
pub use data::SessionData;
use svg::{clock, describe, esc, label_colour};

/// Length of the consecutive windows in the per-window table: 2 minutes, or 30 s
/// for sessions shorter than 4 minutes (so short sessions still get several rows).
fn window_len(duration_s: f64) -> f64 {
    if duration_s < 240.0 { 30.0 } else { 120.0 }
}

fn pct(p: f64) -> String {
    format!("{:.1}%", p * 100.0)
}

/// The whole report as an HTML document titled `title`.
pub fn html(data: &SessionData, title: &str) -> String {
    let labels = data.labels();
    let s = &data.start;
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.swatch {{ display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }}
svg.plot {{ width: 100%; height: auto; display: block; margin-bottom: 0.5em; }}
.note {{ color: #a04000; }}
</style></head><body>
<h1>{t}</h1>
"#,
        t = esc(title)
    );
    let started = s
        .started_unix_s
        .map(utc_string)
        .unwrap_or_else(|| "unknown".into());
    let rows = [
        ("Started (UTC)", started),
        ("Duration", clock(data.duration_s)),
        ("Source", s.source.clone()),
        ("Model", format!("{} ({}, {})", s.model, s.method, s.device)),
        ("Labels", labels.join(", ")),
        (
            "Speakers",
            match crate::speaker::SpeakerSetup::from_config(&s.config) {
                Some(setup) => setup.describe(),
                None if data.speakers.is_empty() => "not told apart".into(),
                None => "told apart; how is not recorded (an older log)".into(),
            },
        ),
        ("Utterances scored", data.utterances.len().to_string()),
        (
            "Skipped (not scored)",
            if data.skipped.is_empty() {
                "0".into()
            } else {
                format!(
                    "{} — {}",
                    data.skipped.len(),
                    skip_reasons(&data.skipped.iter().map(|s| &s.reason).collect::<Vec<_>>())
                )
            },
        ),
        ("Audio samples lost", data.dropped_samples.to_string()),
        (
            "Ended",
            data.end_reason
                .clone()
                .unwrap_or_else(|| "abruptly (no session_end)".into()),
        ),
        ("emomon", s.emomon_version.clone()),
    ];
    h.push_str("<table class=\"session\">");
    for (k, v) in rows {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table>\n");
    for note in &data.notes {
        let _ = writeln!(h, "<p class=\"note\">Note: {}</p>", esc(note));
    }
    if data.utterances.is_empty() {
        h.push_str("<p>No utterance was scored in this session.</p>\n");
    }

    h.push_str("<h2>Over time</h2>\n");
    h.push_str(&svg::emotions(data));
    h.push_str(&svg::decayed(data));
    h.push_str(&svg::ambiguity(data));
    h.push_str("<h2>Prosody</h2>\n");
    h.push_str(&svg::prosody(data));

    if let Some(snap) = &data.final_snapshot {
        h.push_str("<h2>Summary per label</h2>\n");
        h.push_str(
            "<p>Duration-weighted mean probability. Rolling columns are taken at the end of the session.</p>\n",
        );
        let mut cols: Vec<(String, Option<crate::aggregate::Summary>)> =
            vec![("Whole session".into(), snap.session.clone())];
        cols.push((
            format!(
                "Time-decayed (half-life {:.0} s)",
                data.aggregation.half_life_s
            ),
            snap.decayed.clone(),
        ));
        for w in &snap.windows {
            cols.push((
                format!("Last {}", window_name(w.length_s)),
                w.summary.clone(),
            ));
        }
        h.push_str("<table class=\"per-label\"><tr><th>Label</th>");
        for (c, _) in &cols {
            let _ = write!(h, "<th>{}</th>", esc(c));
        }
        h.push_str("<th>Top label of (utterances)</th></tr>");
        for (i, l) in labels.iter().enumerate() {
            h.push_str(&label_row_start(l, i));
            for (_, summary) in &cols {
                let cell = summary.as_ref().map_or("–".into(), |s| pct(s.probs[i]));
                let _ = write!(h, "<td>{cell}</td>");
            }
            let n = data.utterances.iter().filter(|u| u.top() == i).count();
            let _ = write!(h, "<td>{n}</td></tr>");
        }
        for (name, get) in [
            (
                "Entropy (normalised)",
                (|s: &crate::aggregate::Summary| format!("{:.2}", s.entropy_norm))
                    as fn(&crate::aggregate::Summary) -> String,
            ),
            ("Top-2 margin", |s| {
                format!("{:.0} pts", s.top2_margin * 100.0)
            }),
            ("Utterances", |s| s.n_utterances.to_string()),
        ] {
            let _ = write!(h, "<tr><th>{name}</th>");
            for (_, summary) in &cols {
                let _ = write!(h, "<td>{}</td>", summary.as_ref().map_or("–".into(), get));
            }
            h.push_str("<td></td></tr>");
        }
        h.push_str("</table>\n");
        h.push_str(&per_speaker(data));

        let w = window_len(data.duration_s);
        let _ = writeln!(
            h,
            "<h2>Summary per {} window</h2>",
            window_name(w).replace(' ', "&nbsp;")
        );
        h.push_str(
            "<table class=\"per-window\"><tr><th>Window</th><th>Utterances</th><th>Speech</th>",
        );
        for (i, l) in labels.iter().enumerate() {
            let _ = write!(
                h,
                "<th><span class=\"swatch\" style=\"background:{}\"></span>{}</th>",
                label_colour(l, i),
                esc(l)
            );
        }
        h.push_str("<th>Entropy</th><th>Top</th></tr>");
        // Windows with speech, from the one aggregation module; a run of windows
        // without speech is one row (an eight-hour log stays a readable table).
        let windows = crate::aggregate::consecutive_windows(
            data.utterances
                .iter()
                .filter(|u| u.aggregated)
                .map(|u| (u.start_s, u.end_s, &u.probs[..])),
            labels.len(),
            w,
        );
        let silent_row = |h: &mut String, from: u64, to: u64| {
            let _ = write!(
                h,
                "<tr><td>{}–{}</td><td>0</td><td>0 s</td><td colspan=\"{}\">no speech</td></tr>",
                clock(from as f64 * w),
                clock(to as f64 * w),
                labels.len() + 2
            );
        };
        let mut next = 0u64;
        for (i, summary) in &windows.windows {
            if *i > next {
                silent_row(&mut h, next, *i);
            }
            let lo = *i as f64 * w;
            let _ = write!(
                h,
                "<tr><td>{}–{}</td><td>{}</td><td>{:.1} s</td>",
                clock(lo),
                clock(lo + w),
                summary.n_utterances,
                summary.weight
            );
            for v in &summary.probs {
                let _ = write!(h, "<td>{}</td>", pct(*v));
            }
            let _ = write!(
                h,
                "<td>{:.2}</td><td>{}</td></tr>",
                summary.entropy_norm,
                esc(&labels[summary.top])
            );
            next = i + 1;
        }
        let end = (data.duration_s / w).ceil();
        if end.is_finite() && end > next as f64 && end <= crate::aggregate::MAX_WINDOWS as f64 {
            silent_row(&mut h, next, end as u64);
        }
        if windows.out_of_range > 0 {
            let _ = write!(
                h,
                "<tr><td colspan=\"{}\" class=\"note\">{} utterances with times beyond {} are not in this table</td></tr>",
                labels.len() + 5,
                windows.out_of_range,
                clock(crate::aggregate::MAX_WINDOWS as f64 * w)
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2>Dominant emotion changes</h2>\n");
    if data.dominant_changes.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str(
            "<table class=\"changes\"><tr><th>Time</th><th>From</th><th>To</th><th>Lead</th></tr>",
        );
        for c in &data.dominant_changes {
            let from = c.from.map_or("–".to_string(), |f| labels[f].clone());
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0} pts</td></tr>",
                clock(c.at_s),
                esc(&from),
                esc(&labels[c.to]),
                c.margin * 100.0
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2>Markers</h2>\n");
    if data.markers.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str("<table class=\"markers\"><tr><th>Time</th><th>Note</th><th>Rolling distribution then</th><th>Entropy</th></tr>");
        for m in &data.markers {
            let (dist, ent) = match data.decayed_at(m.t_s) {
                Some(d) => (describe(labels, &d.probs), format!("{:.2}", d.entropy_norm)),
                None => ("no speech yet".into(), "–".into()),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                clock(m.t_s),
                esc(m.note.as_deref().unwrap_or("")),
                esc(&dist),
                ent
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str(
        "<p style=\"color:#777\">Probabilities are the model's reading of how the speech sounds, not a diagnosis. \
Entropy near 1 or a small top-2 margin means the reading is mixed.</p>\n</body></html>\n",
    );
    h
}

/// The per-speaker table (empty when the session did not track speakers): each
/// speaker's own whole-session and time-decayed distributions, side by side.
fn per_speaker(data: &SessionData) -> String {
    if data.speakers.is_empty() {
        return String::new();
    }
    let labels = data.labels();
    let mut h = String::from("<h2>Per speaker</h2>\n");
    h.push_str(
        "<p>Each speaker's utterances aggregated on their own (one speaker never dilutes \
         another): duration-weighted mean over the session, and time-decayed at the end.</p>\n",
    );
    h.push_str("<table class=\"per-speaker\"><tr><th>Label</th>");
    for t in &data.speakers {
        let name = esc(&t.name);
        let _ = write!(h, "<th>{name} session</th><th>{name} decayed</th>");
    }
    h.push_str("</tr>");
    let cell = |s: &Option<crate::aggregate::Summary>, i: usize| {
        s.as_ref().map_or("–".into(), |s| pct(s.probs[i]))
    };
    for (i, l) in labels.iter().enumerate() {
        h.push_str(&label_row_start(l, i));
        for t in &data.speakers {
            let _ = write!(
                h,
                "<td>{}</td><td>{}</td>",
                cell(&t.snapshot.session, i),
                cell(&t.snapshot.decayed, i)
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("<tr><th>Utterances, speech</th>");
    for t in &data.speakers {
        let _ = write!(
            h,
            "<td colspan=\"2\">{}, {}</td>",
            t.utterances,
            clock(t.speech_s)
        );
    }
    h.push_str("</tr><tr><th>Dominant at the end</th>");
    for t in &data.speakers {
        let dominant = t
            .snapshot
            .dominant
            .and_then(|i| labels.get(i))
            .map_or("–".to_string(), |l| esc(l));
        let _ = write!(h, "<td colspan=\"2\">{dominant}</td>");
    }
    h.push_str("</tr></table>\n");
    for t in &data.speakers {
        h.push_str(&svg::speaker_emotions(data, &t.name));
        h.push_str(&svg::speaker_decayed(data, &t.name));
    }
    h
}

/// A table row's opening label cell: the label's colour swatch and its name.
fn label_row_start(label: &str, index: usize) -> String {
    format!(
        "<tr><td><span class=\"swatch\" style=\"background:{}\"></span>{}</td>",
        label_colour(label, index),
        esc(label)
    )
}

fn window_name(seconds: f64) -> String {
    if seconds >= 60.0 && (seconds % 60.0).abs() < 1e-9 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{seconds:.0} s")
    }
}

/// "3× scorer behind…, 1× session stopped…".
fn skip_reasons(reasons: &[&String]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in reasons {
        match counts.iter_mut().find(|c| c.0 == r.as_str()) {
            Some(c) => c.1 += 1,
            None => counts.push((r.as_str(), 1)),
        }
    }
    counts
        .iter()
        .map(|(r, n)| format!("{n}× {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_lengths() {
        assert_eq!(window_name(120.0), "2 min");
        assert_eq!(window_name(30.0), "30 s");
        assert_eq!(window_len(100.0), 30.0);
    }
}
