//! The report's time plots, drawn once with `plotters` for every output: SVG in the
//! HTML report and `-o report.svg` ([`super::svg`]), a bitmap for `-o report.png`
//! ([`super::png`]).
//!
//! Seven panels share one x axis (session time) so they line up when stacked:
//! emotions per utterance (stacked columns as wide as the utterance), the
//! time-decayed distribution (stacked area), ambiguity (entropy and top-2 margin),
//! and four prosody trends. Markers are dashed vertical lines on every panel;
//! skipped utterances are grey bands on the emotion panel.

use plotters::coord::Shift;
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::data::{MAX_PLAUSIBLE_S, SessionData, Utt};
use super::svg::{clock, decayed_at, label_colour};
use crate::plotting::{Drawn, bold, font, hex};

/// Width of every panel, px (the HTML scales them with the page).
pub const WIDTH: u32 = 960;
/// Room for the y tick labels, px.
const LEFT: u32 = 64;
const RIGHT: u32 = 16;
/// Title strip above each panel's chart, px.
const HEAD: u32 = 22;
/// Title strip of the whole report (SVG and PNG files), px.
const REPORT_HEAD: u32 = 36;

/// One plot of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Emotions,
    Decayed,
    Ambiguity,
    /// Index into [`PROSODY`].
    Prosody(usize),
}

/// The panels in report order.
pub const PANELS: [Panel; 7] = [
    Panel::Emotions,
    Panel::Decayed,
    Panel::Ambiguity,
    Panel::Prosody(0),
    Panel::Prosody(1),
    Panel::Prosody(2),
    Panel::Prosody(3),
];

type Getter = fn(&Utt) -> Option<f32>;

/// Prosody panels: name, unit, value.
const PROSODY: [(&str, &str, Getter); 4] = [
    ("F0 median", "Hz", |u| {
        u.prosody.and_then(|p| p.f0_median_hz)
    }),
    ("Energy mean", "dBFS", |u| {
        u.prosody.and_then(|p| p.energy_db_mean)
    }),
    ("Speaking rate", "syll/s", |u| {
        u.prosody.and_then(|p| p.speaking_rate_syll_s)
    }),
    ("Pause ratio", "", |u| u.prosody.and_then(|p| p.pause_ratio)),
];

const ROLLING_ENTROPY: &str = "#c0392b";
const ROLLING_MARGIN: &str = "#2c7fb8";
const DOTS: &str = "#555555";

impl Panel {
    /// Height in px (every panel is [`WIDTH`] wide).
    pub fn height(self) -> u32 {
        match self {
            Panel::Emotions => 260,
            Panel::Decayed | Panel::Ambiguity => 220,
            Panel::Prosody(_) => 150,
        }
    }

    /// The panel's kind, as the `class` of its SVG (`plot emotions`, …).
    pub fn class(self) -> &'static str {
        match self {
            Panel::Emotions => "emotions",
            Panel::Decayed => "decayed",
            Panel::Ambiguity => "ambiguity",
            Panel::Prosody(_) => "prosody",
        }
    }

    /// The title drawn above the panel.
    pub fn title(self, data: &SessionData) -> String {
        match self {
            Panel::Emotions => "Emotions per utterance (stacked probabilities)".into(),
            Panel::Decayed => format!(
                "Rolling distribution (time-decayed, half-life {:.0} s)",
                data.aggregation.half_life_s
            ),
            Panel::Ambiguity => "Ambiguity over time".into(),
            Panel::Prosody(k) => match PROSODY[k] {
                (name, "", _) => format!("Prosody: {name}"),
                (name, unit, _) => format!("Prosody: {name} ({unit})"),
            },
        }
    }

    /// Draws the panel (title, colour key, axes, data, markers) filling `area`.
    pub fn draw<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, Shift>,
        data: &SessionData,
    ) -> Drawn<DB> {
        self.draw_titled(area, data, &self.title(data))
    }

    /// [`draw`](Self::draw) with another title.
    fn draw_titled<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, Shift>,
        data: &SessionData,
        title: &str,
    ) -> Drawn<DB> {
        let (strip, body) = area.split_vertically(HEAD);
        match self {
            Panel::Emotions => emotions(&strip, &body, data, title),
            Panel::Decayed => decayed(&strip, &body, data, title),
            Panel::Ambiguity => ambiguity(&strip, &body, data, title),
            Panel::Prosody(k) => prosody(&strip, &body, data, title, PROSODY[k].2),
        }
    }
}

/// Height of the whole report (title strip and every panel), px.
pub fn report_height() -> u32 {
    REPORT_HEAD + PANELS.iter().map(|p| p.height()).sum::<u32>()
}

/// The whole report: `title`, then every panel stacked.
pub fn draw_report<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &SessionData,
    title: &str,
) -> Drawn<DB> {
    area.draw_text(title, &bold(16), (LEFT as i32, 10))?;
    let (_, mut rest) = area.split_vertically(REPORT_HEAD);
    for panel in PANELS {
        let (this, below) = rest.split_vertically(panel.height());
        panel.draw(&this, data)?;
        rest = below;
    }
    Ok(())
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<TimeAxis, RangedCoordf64>>;

/// Session time on the x axis, ticked at multiples of [`time_step`] (plotters' own
/// ticks are 1-2-5 multiples, odd for minutes and seconds).
struct TimeAxis {
    linear: RangedCoordf64,
    step: f64,
}

impl TimeAxis {
    fn new(t_max: f64) -> Self {
        Self {
            linear: (0.0..t_max).into(),
            step: time_step(t_max),
        }
    }
}

impl Ranged for TimeAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, t: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(t, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let end = self.linear.range().end;
        (0..)
            .map(|i| f64::from(i) * self.step)
            .take_while(|t| *t <= end + 1e-9)
            .take(hint.max_num_points())
            .collect()
    }

    fn range(&self) -> Range<f64> {
        self.linear.range()
    }
}

/// A tick step giving at most ~10 time ticks, in steps a clock reader expects.
fn time_step(t_max: f64) -> f64 {
    [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
    ]
    .into_iter()
    .find(|s| t_max / s <= 10.0)
    .unwrap_or(7200.0)
}

/// Axes over session time (x, `m:ss`) and `y_range`, with light horizontal grid
/// lines at the y ticks.
fn time_chart<'a, DB: DrawingBackend>(
    body: &'a DrawingArea<DB, Shift>,
    data: &SessionData,
    (y_min, y_max): (f64, f64),
    y_fmt: &dyn Fn(&f64) -> String,
) -> Result<Chart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let y_max = if y_max > y_min { y_max } else { y_min + 1.0 };
    let mut chart = ChartBuilder::on(body)
        .margin_right(RIGHT)
        .margin_top(6)
        .x_label_area_size(20)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(TimeAxis::new(data.duration_s.max(1.0)), y_min..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(0)
        .bold_line_style(hex("#e4e4e4").stroke_width(1))
        .axis_style(hex("#444444").stroke_width(1))
        .x_labels(12)
        .y_labels(5)
        .x_label_formatter(&|t| clock(*t))
        .y_label_formatter(y_fmt)
        .label_style(font(11))
        .draw()?;
    Ok(chart)
}

/// Whether a time can go on the time axis: times past [`MAX_PLAUSIBLE_S`] (a corrupt
/// log) are left off it, as `SessionData` notes, and would overflow the plot's pixel
/// arithmetic.
fn plottable(t: f64) -> bool {
    t.is_finite() && t <= MAX_PLAUSIBLE_S
}

/// The utterances drawn on the time axis (see [`plottable`]).
fn plotted(data: &SessionData) -> impl Iterator<Item = &Utt> {
    data.utterances
        .iter()
        .filter(|u| plottable(u.start_s) && plottable(u.end_s))
}

/// Dashed vertical lines at the markers, a ▲ on top.
fn markers<DB: DrawingBackend>(chart: &mut Chart<DB>, data: &SessionData) -> Drawn<DB> {
    let (y0, y1) = (chart.y_range().start, chart.y_range().end);
    for m in data.markers.iter().filter(|m| plottable(m.t_s)) {
        chart.draw_series(DashedLineSeries::new(
            [(m.t_s, y0), (m.t_s, y1)],
            4,
            3,
            BLACK.stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            "▲",
            (m.t_s, y1),
            font(10).pos(Pos::new(HPos::Center, VPos::Bottom)),
        )))?;
    }
    Ok(())
}

/// How a colour key entry is drawn.
enum Key {
    Swatch(RGBAColor),
    Dot(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
}

/// The panel title (left) and its colour key (right-aligned) in the title strip.
fn head<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    keys: &[(Key, &str)],
) -> Drawn<DB> {
    area.draw_text(title, &bold(13), (LEFT as i32, 5))?;
    let style = font(11).pos(Pos::new(HPos::Left, VPos::Center));
    let mut widths = Vec::with_capacity(keys.len());
    for (_, label) in keys {
        widths.push(area.estimate_text_size(label, &style)?.0 as i32);
    }
    let (step, gap) = (16, 12);
    let total: i32 = widths.iter().map(|w| step + w + gap).sum();
    let mut x = area.dim_in_pixel().0 as i32 - RIGHT as i32 - total + gap;
    let y = 12;
    for ((key, label), w) in keys.iter().zip(widths) {
        match key {
            Key::Swatch(c) => {
                area.draw(&Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()))?
            }
            Key::Dot(c) => area.draw(&Circle::new((x + 5, y), 3, c.filled()))?,
            Key::Line(c) => area.draw(&PathElement::new(
                vec![(x, y), (x + 12, y)],
                c.stroke_width(2),
            ))?,
            Key::Dashed(c) => area.draw(&DashedPathElement::new(
                vec![(x, y), (x + 12, y)],
                4,
                2,
                c.stroke_width(2),
            ))?,
        }
        area.draw_text(label, &style, (x + step, y))?;
        x += step + w + gap;
    }
    Ok(())
}

fn percent(v: &f64) -> String {
    format!("{:.0}%", v * 100.0)
}

fn label_colours(data: &SessionData) -> Vec<RGBColor> {
    let labels = data.labels();
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| hex(label_colour(l, i)))
        .collect()
}

/// Emotions per utterance: one stacked column per utterance, spanning its time.
fn emotions<DB: DrawingBackend>(
    head_area: &DrawingArea<DB, Shift>,
    body: &DrawingArea<DB, Shift>,
    data: &SessionData,
    title: &str,
) -> Drawn<DB> {
    let labels = data.labels();
    let colours = label_colours(data);
    let skipped = hex("#999999").mix(0.35);
    let mut keys: Vec<(Key, &str)> = labels
        .iter()
        .zip(&colours)
        .map(|(l, c)| (Key::Swatch(c.to_rgba()), l.as_str()))
        .collect();
    if !data.skipped.is_empty() {
        keys.push((Key::Swatch(skipped), "skipped"));
    }
    head(head_area, title, &keys)?;
    let mut chart = time_chart(body, data, (0.0, 1.0), &percent)?;
    chart.draw_series(
        data.skipped
            .iter()
            .filter(|s| plottable(s.end_s))
            .map(|s| Rectangle::new([(s.start_s, 0.0), (s.end_s, 1.0)], skipped.filled())),
    )?;
    // At least ~1.5 px wide, so that very short utterances still show.
    let min_w = 1.5 * data.duration_s.max(1.0) / f64::from(WIDTH - LEFT - RIGHT);
    for (i, colour) in colours.iter().enumerate() {
        chart.draw_series(plotted(data).map(|u| {
            let below: f64 = u.probs[..i].iter().sum();
            Rectangle::new(
                [
                    (u.start_s, below),
                    (u.end_s.max(u.start_s + min_w), below + u.probs[i]),
                ],
                colour.filled(),
            )
        }))?;
    }
    markers(&mut chart, data)
}

/// One speaker's own `panel` (for the report's per-speaker section: their emotions per
/// utterance and their rolling distribution): drawn from [`SessionData::speaker_view`],
/// so only their utterances and their own track's time-decayed distribution, on the
/// session's time axis (the speakers' panels line up), titled with their name
/// ("S1: emotions per utterance …").
pub fn draw_speaker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &SessionData,
    speaker: &str,
    panel: Panel,
) -> Drawn<DB> {
    let title = panel.title(data);
    let mut chars = title.chars();
    let title = match chars.next() {
        Some(first) => format!("{speaker}: {}{}", first.to_lowercase(), chars.as_str()),
        None => speaker.to_string(),
    };
    panel.draw_titled(area, &data.speaker_view(speaker), &title)
}

/// Samples for the area plot: a regular grid plus every utterance end, so steps
/// land where they happen.
fn sample_times(data: &SessionData) -> Vec<f64> {
    let n = 400;
    let mut ts: Vec<f64> = (0..=n)
        .map(|i| data.duration_s * f64::from(i) / f64::from(n))
        .chain(plotted(data).map(|u| u.end_s))
        .collect();
    ts.sort_by(f64::total_cmp);
    ts.dedup();
    ts
}

/// The time-decayed distribution over time, one stacked area per label.
fn decayed<DB: DrawingBackend>(
    head_area: &DrawingArea<DB, Shift>,
    body: &DrawingArea<DB, Shift>,
    data: &SessionData,
    title: &str,
) -> Drawn<DB> {
    head(head_area, title, &[])?;
    let mut chart = time_chart(body, data, (0.0, 1.0), &percent)?;
    let series: Vec<(f64, Vec<f64>)> = sample_times(data)
        .into_iter()
        .filter_map(|t| decayed_at(data, t).map(|d| (t, d)))
        .collect();
    if !series.is_empty() {
        for (i, colour) in label_colours(data).iter().enumerate() {
            let below = |d: &[f64]| d[..i].iter().sum::<f64>();
            let upper = series.iter().map(|(t, d)| (*t, below(d) + d[i]));
            let lower = series.iter().rev().map(|(t, d)| (*t, below(d)));
            let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
            chart.draw_series(std::iter::once(Polygon::new(outline, colour.filled())))?;
        }
    }
    markers(&mut chart, data)
}

/// Ambiguity: each utterance's normalised entropy (dots), the decayed
/// distribution's entropy (line) and top-2 margin (dashed line).
fn ambiguity<DB: DrawingBackend>(
    head_area: &DrawingArea<DB, Shift>,
    body: &DrawingArea<DB, Shift>,
    data: &SessionData,
    title: &str,
) -> Drawn<DB> {
    let (dots, entropy, margin) = (hex(DOTS), hex(ROLLING_ENTROPY), hex(ROLLING_MARGIN));
    head(
        head_area,
        title,
        &[
            (Key::Dot(dots), "utterance entropy"),
            (Key::Line(entropy), "rolling entropy"),
            (Key::Dashed(margin), "rolling top-2 margin"),
        ],
    )?;
    let mut chart = time_chart(body, data, (0.0, 1.0), &|v| format!("{v:.2}"))?;
    let at_end = |f: fn(&Utt) -> f64| -> Vec<(f64, f64)> {
        plotted(data).map(|u| (u.end_s, f(u))).collect()
    };
    chart.draw_series(LineSeries::new(
        at_end(|u| u.decayed.entropy_norm),
        entropy.stroke_width(2),
    ))?;
    chart.draw_series(DashedLineSeries::new(
        at_end(|u| u.decayed.top2_margin),
        5,
        3,
        margin.stroke_width(2),
    ))?;
    chart.draw_series(plotted(data).map(|u| {
        Circle::new(
            (0.5 * (u.start_s + u.end_s), u.entropy_norm()),
            3,
            dots.filled(),
        )
    }))?;
    markers(&mut chart, data)
}

/// One prosody descriptor over time: a grey trend line through the utterances'
/// values (dots), y range padded by 10 %.
fn prosody<DB: DrawingBackend>(
    head_area: &DrawingArea<DB, Shift>,
    body: &DrawingArea<DB, Shift>,
    data: &SessionData,
    title: &str,
    get: Getter,
) -> Drawn<DB> {
    head(head_area, title, &[])?;
    let values: Vec<(f64, f64)> = plotted(data)
        .filter_map(|u| {
            get(u)
                .filter(|v| v.is_finite())
                .map(|v| (0.5 * (u.start_s + u.end_s), f64::from(v)))
        })
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v.1), hi.max(v.1))
        });
    let range = if values.is_empty() {
        (0.0, 1.0)
    } else {
        let pad = ((hi - lo) * 0.1).max(1e-3);
        (lo - pad, hi + pad)
    };
    let mut chart = time_chart(body, data, range, &|v| format_value(*v))?;
    if values.is_empty() {
        let (w, h) = body.dim_in_pixel();
        body.draw_text(
            "no values in this session",
            &font(12)
                .color(&hex("#777777"))
                .pos(Pos::new(HPos::Center, VPos::Center)),
            (w as i32 / 2, h as i32 / 2),
        )?;
    }
    chart.draw_series(LineSeries::new(
        values.iter().copied(),
        hex("#888888").stroke_width(1),
    ))?;
    chart.draw_series(
        values
            .iter()
            .map(|&p| Circle::new(p, 3, hex("#333333").filled())),
    )?;
    markers(&mut chart, data)
}

/// A tick value with as many decimals as its size needs.
fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
