//! Hand-written SVG plots for the eval report: a confusion matrix and a
//! reliability diagram. Plain SVG keeps the report viewable in any browser and
//! diffable in review, with no plotting dependency.

use std::fmt::Write as _;

use super::metrics::ReliabilityBin;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The `<svg>` element on a white background, with a centred title.
fn svg_open(width: f64, height: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    s
}

/// Confusion matrix as a heat map: each cell shaded by its share of the row
/// (the reference label's recall pattern), labelled with its count.
pub fn confusion_svg(title: &str, labels: &[String], confusion: &[Vec<u64>]) -> String {
    let k = labels.len().max(1);
    let cell = 48.0;
    let (left, top) = (100.0, 70.0);
    let width = left + cell * k as f64 + 20.0;
    let height = top + cell * k as f64 + 40.0;
    let mut s = svg_open(width, height, title);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">predicted</text>"#,
        left + cell * k as f64 / 2.0,
        height - 10.0
    );
    let _ = writeln!(
        s,
        r#"<text x="12" y="{}" text-anchor="middle" transform="rotate(-90 12 {})">reference</text>"#,
        top + cell * k as f64 / 2.0,
        top + cell * k as f64 / 2.0
    );
    for (j, l) in labels.iter().enumerate() {
        let x = left + cell * (j as f64 + 0.5);
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{}" text-anchor="start" transform="rotate(-45 {x} {})">{}</text>"#,
            top - 6.0,
            top - 6.0,
            escape(l)
        );
    }
    for (i, row) in confusion.iter().enumerate() {
        let y = top + cell * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + cell / 2.0 + 4.0,
            escape(labels.get(i).map_or("", String::as_str))
        );
        let total: u64 = row.iter().sum();
        for (j, &n) in row.iter().enumerate() {
            let share = if total > 0 {
                n as f64 / total as f64
            } else {
                0.0
            };
            // White → dark blue with the row share.
            let shade = |full: f64| (255.0 - share * (255.0 - full)).round() as u8;
            let (r, g, b) = (shade(8.0), shade(48.0), shade(107.0));
            let x = left + cell * j as f64;
            let text = if share > 0.5 { "white" } else { "black" };
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({r},{g},{b})" stroke="#ccc"><title>{} → {}: {n}</title></rect>"##,
                escape(labels.get(i).map_or("", String::as_str)),
                escape(labels.get(j).map_or("", String::as_str)),
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle" fill="{text}">{n}</text>"#,
                x + cell / 2.0,
                y + cell / 2.0 + 4.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Reliability diagram: per confidence bin, a bar at the accuracy of the
/// clips in it and a dot at their mean confidence; the diagonal is perfect
/// calibration. Bin counts are printed above the bars.
pub fn reliability_svg(title: &str, bins: &[ReliabilityBin], ece: f64) -> String {
    let (left, top, plot) = (50.0, 40.0, 300.0);
    let (width, height) = (left + plot + 20.0, top + plot + 50.0);
    let px = |v: f64| left + v * plot;
    let py = |v: f64| top + (1.0 - v) * plot;
    let mut s = svg_open(width, height, &format!("{title} (ECE {ece:.3})"));
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{plot}" height="{plot}" fill="none" stroke="#888"/>"##
    );
    for t in 0..=5 {
        let v = t as f64 / 5.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{v:.1}</text><text x="{}" y="{}" text-anchor="end">{v:.1}</text>"#,
            px(v),
            top + plot + 14.0,
            left - 4.0,
            py(v) + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">confidence (top-label probability)</text>"#,
        px(0.5),
        height - 8.0
    );
    let _ = writeln!(
        s,
        r#"<text x="12" y="{}" text-anchor="middle" transform="rotate(-90 12 {})">accuracy</text>"#,
        py(0.5),
        py(0.5)
    );
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 3"/>"##,
        px(0.0),
        py(0.0),
        px(1.0),
        py(1.0)
    );
    for b in bins {
        let (Some(acc), Some(conf)) = (b.accuracy, b.mean_confidence) else {
            continue;
        };
        let w = (b.upper - b.lower) * plot;
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#4a78b5" fill-opacity="0.8" stroke="white"><title>[{:.1}, {:.1}): {} clip(s), accuracy {acc:.3}, confidence {conf:.3}</title></rect>"##,
            px(b.lower),
            py(acc),
            w,
            acc * plot,
            b.lower,
            b.upper,
            b.count
        );
        let _ = writeln!(
            s,
            r##"<circle cx="{}" cy="{}" r="3" fill="#d62728"/><text x="{}" y="{}" text-anchor="middle" font-size="9">{}</text>"##,
            px(conf),
            py(conf),
            px(b.lower) + w / 2.0,
            py(acc) - 3.0,
            b.count
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_has_a_cell_per_pair() {
        let labels = vec!["a<".to_string(), "b".to_string()];
        let svg = confusion_svg("t", &labels, &[vec![3, 1], vec![0, 2]]);
        assert_eq!(svg.matches("<rect x=").count(), 4);
        assert!(svg.contains("a&lt;") && !svg.contains("a<<"));
        assert!(svg.contains(">3</text>") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn reliability_draws_nonempty_bins() {
        let bins = vec![
            ReliabilityBin {
                lower: 0.0,
                upper: 0.5,
                count: 0,
                mean_confidence: None,
                accuracy: None,
            },
            ReliabilityBin {
                lower: 0.5,
                upper: 1.0,
                count: 4,
                mean_confidence: Some(0.7),
                accuracy: Some(0.75),
            },
        ];
        let svg = reliability_svg("t", &bins, 0.05);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("4 clip(s)") && svg.contains("ECE 0.050"));
    }
}
