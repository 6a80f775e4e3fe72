//! The report's plots, written as SVG by hand.
//!
//! Four time plots share one x axis (session time) so they line up when stacked:
//! emotions per utterance (stacked columns as wide as the utterance), the
//! time-decayed distribution (stacked area), ambiguity (entropy and top-2 margin),
//! and prosody trends. Markers are dashed vertical lines on every plot; skipped
//! utterances are grey ticks under the emotion plot. Hand-written SVG keeps the
//! report dependency-free and the output small and diffable; every element carries
//! a `class` so tests (and stylesheets) can find it.

use std::fmt::Write;

use super::data::{SessionData, Utt};

/// Width of every plot, px (the HTML scales them with the page).
pub const WIDTH: f64 = 960.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;

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
pub use emomon_tui::view::clock;

/// A plot area with a time x axis and a linear y axis.
struct Plot {
    height: f64,
    top: f64,
    bottom: f64,
    t_max: f64,
    y_min: f64,
    y_max: f64,
}

impl Plot {
    fn new(height: f64, t_max: f64, y_min: f64, y_max: f64) -> Self {
        Self {
            height,
            top: 28.0,
            bottom: 30.0,
            t_max: t_max.max(1.0),
            y_min,
            y_max: if y_max > y_min { y_max } else { y_min + 1.0 },
        }
    }

    fn x(&self, t: f64) -> f64 {
        LEFT + (t / self.t_max).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        let f = ((v - self.y_min) / (self.y_max - self.y_min)).clamp(0.0, 1.0);
        self.height - self.bottom - f * (self.height - self.top - self.bottom)
    }

    /// Opens the `<svg>`, draws the title, axes, time ticks and y ticks.
    fn begin(&self, out: &mut String, class: &str, title: &str, y_ticks: &[(f64, String)]) {
        let _ = write!(
            out,
            r#"<svg class="plot {class}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {h}" width="{WIDTH}" height="{h}" font-family="sans-serif" font-size="11">"#,
            h = self.height
        );
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{}</text>"#,
            esc(title)
        );
        let (x0, x1) = (self.x(0.0), self.x(self.t_max));
        let (y0, y1) = (self.y(self.y_min), self.y(self.y_max));
        for (v, label) in y_ticks {
            let y = self.y(*v);
            let _ = write!(
                out,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{}</text>"##,
                esc(label),
                tx = x0 - 6.0,
                ty = y + 4.0
            );
        }
        let step = time_step(self.t_max);
        let mut t = 0.0;
        while t <= self.t_max + 1e-9 {
            let x = self.x(t);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#888"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                y0 + 4.0,
                y0 + 16.0,
                clock(t)
            );
            t += step;
        }
        let _ = write!(
            out,
            r##"<line x1="{x0}" y1="{y0:.1}" x2="{x1}" y2="{y0:.1}" stroke="#444"/><line x1="{x0}" y1="{y0:.1}" x2="{x0}" y2="{y1:.1}" stroke="#444"/>"##
        );
    }

    /// Dashed vertical lines at the markers, with their notes as tooltips.
    fn markers(&self, out: &mut String, data: &SessionData) {
        for m in &data.markers {
            let x = self.x(m.t_s);
            let note = m.note.as_deref().unwrap_or("marker");
            let _ = write!(
                out,
                r##"<g class="marker"><title>{} {}</title><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="4 3"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">▲</text></g>"##,
                clock(m.t_s),
                esc(note),
                self.y(self.y_max),
                self.y(self.y_min),
                self.y(self.y_max) - 2.0,
            );
        }
    }
}

/// A tick step giving at most ~10 time ticks.
pub fn time_step(t_max: f64) -> f64 {
    [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
    ]
    .into_iter()
    .find(|s| t_max / s <= 10.0)
    .unwrap_or(7200.0)
}

fn percent_ticks() -> Vec<(f64, String)> {
    [0.0, 0.25, 0.5, 0.75, 1.0]
        .iter()
        .map(|&v| (v, format!("{:.0}%", v * 100.0)))
        .collect()
}

/// Colour key, right-aligned on the title line.
fn legend(out: &mut String, labels: &[String], y: f64) {
    let width: f64 = labels
        .iter()
        .map(|l| 22.0 + 7.0 * l.chars().count() as f64)
        .sum();
    let mut x = WIDTH - RIGHT - width;
    for (i, l) in labels.iter().enumerate() {
        let _ = write!(
            out,
            r#"<rect class="legend" x="{x:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            y - 9.0,
            label_colour(l, i),
            x + 13.0,
            esc(l)
        );
        x += 22.0 + 7.0 * l.chars().count() as f64;
    }
}

/// Emotions per utterance: one stacked column per utterance, spanning its time.
pub fn emotions(data: &SessionData) -> String {
    let labels = data.labels();
    let p = Plot::new(260.0, data.duration_s, 0.0, 1.0);
    let mut out = String::new();
    p.begin(
        &mut out,
        "emotions",
        "Emotions per utterance (stacked probabilities)",
        &percent_ticks(),
    );
    legend(&mut out, labels, 16.0);
    for u in &data.utterances {
        let (x0, x1) = (p.x(u.start_s), p.x(u.end_s));
        let w = (x1 - x0).max(1.5);
        let mut acc = 0.0;
        let _ = write!(
            out,
            r#"<g class="utterance"><title>#{} {}–{}: {}</title>"#,
            u.id,
            clock(u.start_s),
            clock(u.end_s),
            esc(&describe(labels, &u.probs))
        );
        for (i, prob) in u.probs.iter().enumerate() {
            let (ya, yb) = (p.y(acc), p.y(acc + prob));
            acc += prob;
            let _ = write!(
                out,
                r#"<rect x="{x0:.2}" y="{yb:.2}" width="{w:.2}" height="{:.2}" fill="{}"/>"#,
                (ya - yb).max(0.0),
                label_colour(&labels[i], i)
            );
        }
        out.push_str("</g>");
    }
    for s in &data.skipped {
        let x = p.x(0.5 * (s.start_s + s.end_s));
        let y = p.y(0.0);
        let _ = write!(
            out,
            r##"<g class="skipped"><title>#{} skipped: {}</title><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#999" stroke-width="2"/></g>"##,
            s.id,
            esc(&s.reason),
            y + 5.0,
            y + 11.0
        );
    }
    p.markers(&mut out, data);
    out.push_str("</svg>");
    out
}

/// The time-decayed distribution as known at time `t` (utterances ended by `t`).
pub fn decayed_at(data: &SessionData, t: f64) -> Option<Vec<f64>> {
    data.decayed_at(t).map(|s| s.probs.clone())
}

/// Samples for the area plots: a regular grid plus every utterance end, so steps
/// land where they happen.
fn sample_times(data: &SessionData) -> Vec<f64> {
    let n = 400;
    let mut ts: Vec<f64> = (0..=n)
        .map(|i| data.duration_s * i as f64 / n as f64)
        .chain(data.utterances.iter().map(|u| u.end_s))
        .collect();
    ts.sort_by(f64::total_cmp);
    ts.dedup();
    ts
}

/// The time-decayed distribution over time, stacked.
pub fn decayed(data: &SessionData) -> String {
    let labels = data.labels();
    let p = Plot::new(220.0, data.duration_s, 0.0, 1.0);
    let mut out = String::new();
    p.begin(
        &mut out,
        "decayed",
        &format!(
            "Rolling distribution (time-decayed, half-life {:.0} s)",
            data.aggregation.half_life_s
        ),
        &percent_ticks(),
    );
    let series: Vec<(f64, Vec<f64>)> = sample_times(data)
        .into_iter()
        .filter_map(|t| decayed_at(data, t).map(|d| (t, d)))
        .collect();
    if let Some((first_t, _)) = series.first() {
        for i in 0..labels.len() {
            let lower = |d: &[f64]| d[..i].iter().sum::<f64>();
            let mut points: Vec<String> = series
                .iter()
                .map(|(t, d)| format!("{:.1},{:.1}", p.x(*t), p.y(lower(d) + d[i])))
                .collect();
            points.extend(
                series
                    .iter()
                    .rev()
                    .map(|(t, d)| format!("{:.1},{:.1}", p.x(*t), p.y(lower(d)))),
            );
            let _ = write!(
                out,
                r#"<polygon class="area" points="{}" fill="{}"><title>{}</title></polygon>"#,
                points.join(" "),
                label_colour(&labels[i], i),
                esc(&labels[i])
            );
        }
        let _ = first_t;
    }
    p.markers(&mut out, data);
    out.push_str("</svg>");
    out
}

fn polyline(out: &mut String, class: &str, colour: &str, dash: &str, points: &[(f64, f64)]) {
    if points.is_empty() {
        return;
    }
    let pts: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = write!(
        out,
        r#"<polyline class="{class}" points="{}" fill="none" stroke="{colour}" stroke-width="1.6" stroke-dasharray="{dash}"/>"#,
        pts.join(" ")
    );
}

fn dots(out: &mut String, colour: &str, points: &[(f64, f64, String)]) {
    for (x, y, title) in points {
        let _ = write!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.6" fill="{colour}"><title>{}</title></circle>"#,
            esc(title)
        );
    }
}

/// Ambiguity: each utterance's normalised entropy (dots), the decayed
/// distribution's entropy and top-2 margin (lines).
pub fn ambiguity(data: &SessionData) -> String {
    let p = Plot::new(220.0, data.duration_s, 0.0, 1.0);
    let mut out = String::new();
    p.begin(
        &mut out,
        "ambiguity",
        "Ambiguity over time",
        &[0.0, 0.25, 0.5, 0.75, 1.0]
            .iter()
            .map(|&v| (v, format!("{v:.2}")))
            .collect::<Vec<_>>(),
    );
    let _ = write!(
        out,
        r##"<circle cx="{:.1}" cy="12" r="3" fill="#555"/><text x="{:.1}" y="16">utterance entropy</text><line x1="{:.1}" y1="12" x2="{:.1}" y2="12" stroke="#c0392b" stroke-width="2"/><text x="{:.1}" y="16">rolling entropy</text><line x1="{:.1}" y1="12" x2="{:.1}" y2="12" stroke="#2c7fb8" stroke-width="2" stroke-dasharray="5 3"/><text x="{:.1}" y="16">rolling top-2 margin</text>"##,
        LEFT + 480.0,
        LEFT + 487.0,
        LEFT + 600.0,
        LEFT + 620.0,
        LEFT + 624.0,
        LEFT + 720.0,
        LEFT + 740.0,
        LEFT + 744.0,
    );
    let ents: Vec<(f64, f64, String)> = data
        .utterances
        .iter()
        .map(|u| {
            let e = u.entropy_norm();
            (
                p.x(0.5 * (u.start_s + u.end_s)),
                p.y(e),
                format!("#{} entropy {e:.2}", u.id),
            )
        })
        .collect();
    let rolling: Vec<(f64, f64)> = data
        .utterances
        .iter()
        .map(|u| (p.x(u.end_s), p.y(u.decayed.entropy_norm)))
        .collect();
    let margin: Vec<(f64, f64)> = data
        .utterances
        .iter()
        .map(|u| (p.x(u.end_s), p.y(u.decayed.top2_margin)))
        .collect();
    polyline(&mut out, "rolling-entropy", "#c0392b", "none", &rolling);
    polyline(&mut out, "rolling-margin", "#2c7fb8", "5 3", &margin);
    dots(&mut out, "#555", &ents);
    p.markers(&mut out, data);
    out.push_str("</svg>");
    out
}

type Getter = fn(&Utt) -> Option<f64>;

/// Prosody trends: one small plot per descriptor, same time axis.
pub fn prosody(data: &SessionData) -> String {
    let panels: [(&str, &str, Getter); 4] = [
        ("F0 median", "Hz", |u| {
            u.prosody.and_then(|p| p.f0_median_hz).map(f64::from)
        }),
        ("Energy mean", "dBFS", |u| {
            u.prosody.and_then(|p| p.energy_db_mean).map(f64::from)
        }),
        ("Speaking rate", "syll/s", |u| {
            u.prosody
                .and_then(|p| p.speaking_rate_syll_s)
                .map(f64::from)
        }),
        ("Pause ratio", "", |u| {
            u.prosody.and_then(|p| p.pause_ratio).map(f64::from)
        }),
    ];
    let mut out = String::new();
    for (name, unit, get) in panels {
        let values: Vec<(f64, f64, u64)> = data
            .utterances
            .iter()
            .filter_map(|u| {
                get(u)
                    .filter(|v| v.is_finite())
                    .map(|v| (0.5 * (u.start_s + u.end_s), v, u.id))
            })
            .collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v.1), hi.max(v.1))
            });
        let (lo, hi) = if values.is_empty() {
            (0.0, 1.0)
        } else {
            let pad = ((hi - lo) * 0.1).max(1e-3);
            (lo - pad, hi + pad)
        };
        let p = Plot::new(150.0, data.duration_s, lo, hi);
        let ticks: Vec<(f64, String)> = (0..=3)
            .map(|i| {
                let v = lo + (hi - lo) * f64::from(i) / 3.0;
                (v, format_value(v))
            })
            .collect();
        let title = if unit.is_empty() {
            format!("Prosody: {name}")
        } else {
            format!("Prosody: {name} ({unit})")
        };
        p.begin(&mut out, "prosody", &title, &ticks);
        if values.is_empty() {
            let _ = write!(
                out,
                r##"<text x="{:.1}" y="80" text-anchor="middle" fill="#777">no values in this session</text>"##,
                WIDTH / 2.0
            );
        }
        let line: Vec<(f64, f64)> = values.iter().map(|v| (p.x(v.0), p.y(v.1))).collect();
        polyline(&mut out, "trend", "#888", "none", &line);
        let pts: Vec<(f64, f64, String)> = values
            .iter()
            .map(|v| {
                (
                    p.x(v.0),
                    p.y(v.1),
                    format!("#{} {name} {}", v.2, format_value(v.1)),
                )
            })
            .collect();
        dots(&mut out, "#333", &pts);
        p.markers(&mut out, data);
        out.push_str("</svg>");
    }
    out
}

fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
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

/// All plots as one standalone SVG document (for `-o report.svg`).
pub fn standalone(data: &SessionData, title: &str) -> String {
    let plots = [
        emotions(data),
        decayed(data),
        ambiguity(data),
        prosody(data),
    ];
    // Each plot is its own <svg> with a viewBox; nest them at increasing offsets.
    let mut y = 40.0;
    let mut body = String::new();
    for plot in plots.iter().flat_map(|p| split_svgs(p)) {
        let h = svg_height(&plot);
        let _ = write!(body, r#"<g transform="translate(0 {y})">{plot}</g>"#);
        y += h + 10.0;
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {y}" width="{WIDTH}" height="{y}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="26" font-size="16" font-weight="bold">{}</text>{body}</svg>
"#,
        esc(title)
    )
}

/// Splits concatenated `<svg>…</svg>` elements (the prosody panels).
fn split_svgs(s: &str) -> Vec<String> {
    s.split_inclusive("</svg>")
        .filter(|p| !p.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn svg_height(svg: &str) -> f64 {
    svg.split("height=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|h| h.parse().ok())
        .unwrap_or(200.0)
}
