//! The eval report's plots as SVG files, drawn with `plotters`: a confusion matrix
//! and a reliability diagram. SVG keeps them viewable in any browser and diffable
//! in review.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::metrics::ReliabilityBin;
use crate::plotting::{PlotError, font, hex, svg_string};

/// Confusion matrix as a heat map: each cell shaded by its share of the row
/// (the reference label's recall pattern), labelled with its count; reference
/// labels down the left, predicted labels (rotated) along the top.
pub fn confusion_svg(
    title: &str,
    labels: &[String],
    confusion: &[Vec<u64>],
) -> Result<String, PlotError> {
    let k = labels.len().max(1) as i32;
    let (cell, left, top) = (48, 100, 90);
    let (width, height) = (left + cell * k + 20, top + cell * k + 40);
    let grid = hex("#cccccc");
    svg_string(title, (width as u32, height as u32), "", |area| {
        let centred = |size| font(size).pos(Pos::new(HPos::Center, VPos::Center));
        area.draw_text(title, &centred(13), (width / 2, 14))?;
        area.draw_text(
            "predicted",
            &centred(11),
            (left + cell * k / 2, height - 14),
        )?;
        let up = |h| {
            font(11)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(h, VPos::Center))
        };
        area.draw_text("reference", &up(HPos::Center), (14, top + cell * k / 2))?;
        for (j, l) in labels.iter().enumerate() {
            let x = left + cell * j as i32 + cell / 2;
            area.draw_text(l, &up(HPos::Left), (x, top - 6))?;
        }
        for (i, row) in confusion.iter().enumerate() {
            let y = top + cell * i as i32;
            let label = labels.get(i).map_or("", String::as_str);
            let right = font(11).pos(Pos::new(HPos::Right, VPos::Center));
            area.draw_text(label, &right, (left - 6, y + cell / 2))?;
            let total: u64 = row.iter().sum();
            for (j, &n) in row.iter().enumerate() {
                let share = if total > 0 {
                    n as f64 / total as f64
                } else {
                    0.0
                };
                // White → dark blue with the row share.
                let shade = |full: f64| (255.0 - share * (255.0 - full)).round() as u8;
                let fill = RGBColor(shade(8.0), shade(48.0), shade(107.0));
                let x = left + cell * j as i32;
                let corners = [(x, y), (x + cell, y + cell)];
                area.draw(&Rectangle::new(corners, fill.filled()))?;
                area.draw(&Rectangle::new(corners, grid.stroke_width(1)))?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let count = centred(11).color(&ink);
                area.draw_text(&n.to_string(), &count, (x + cell / 2, y + cell / 2))?;
            }
        }
        Ok(())
    })
}

/// Reliability diagram: per confidence bin, a bar at the accuracy of the clips
/// in it and a dot at their mean confidence on the diagonal (perfect
/// calibration, dashed). Bin counts are printed above the bars.
pub fn reliability_svg(
    title: &str,
    bins: &[ReliabilityBin],
    ece: f64,
) -> Result<String, PlotError> {
    let title = format!("{title} (ECE {ece:.3})");
    svg_string(&title, (380, 400), "", |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(&title, font(13))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        let one_decimal = |v: &f64| format!("{v:.1}");
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&one_decimal)
            .y_label_formatter(&one_decimal)
            .x_desc("confidence (top-label probability)")
            .y_desc("accuracy")
            .label_style(font(11))
            .axis_desc_style(font(11))
            .draw()?;
        chart.draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            4,
            3,
            hex("#999999").stroke_width(1),
        ))?;
        let filled: Vec<(&ReliabilityBin, f64, f64)> = bins
            .iter()
            .filter_map(|b| Some((b, b.accuracy?, b.mean_confidence?)))
            .collect();
        let bar = hex("#4a78b5").mix(0.8);
        chart.draw_series(
            filled
                .iter()
                .map(|&(b, acc, _)| Rectangle::new([(b.lower, 0.0), (b.upper, acc)], bar.filled())),
        )?;
        chart.draw_series(
            filled
                .iter()
                .map(|&(_, _, conf)| Circle::new((conf, conf), 3, hex("#d62728").filled())),
        )?;
        let above = font(9).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(filled.iter().map(|&(b, acc, _)| {
            Text::new(
                b.count.to_string(),
                (0.5 * (b.lower + b.upper), acc),
                above.clone(),
            )
        }))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text contents of an SVG's `<text>` elements, in order.
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>').map(|(_, rest)| rest))
            .filter_map(|rest| rest.split("</text>").next())
            .map(str::trim)
            .collect()
    }

    #[test]
    fn confusion_has_a_shaded_cell_and_count_per_pair() {
        let labels = vec!["a<".to_string(), "b".to_string()];
        let svg = confusion_svg("t", &labels, &[vec![3, 1], vec![0, 2]]).expect("drawn");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // One outlined cell per pair.
        assert_eq!(svg.matches("stroke=\"#CCCCCC\"").count(), 4);
        // Row b is all on b: the darkest shade; row a is 3/4 on a.
        assert!(svg.contains("fill=\"#08306B\""), "{svg}");
        assert!(svg.contains("fill=\"#466490\""), "{svg}");
        let t = texts(&svg);
        for want in [
            "t",
            "predicted",
            "reference",
            "a&lt;",
            "b",
            "3",
            "1",
            "0",
            "2",
        ] {
            assert!(t.contains(&want), "{want} in {t:?}");
        }
        assert!(!svg.contains("a<<"));
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
        let svg = reliability_svg("t", &bins, 0.05).expect("drawn");
        assert_eq!(svg.matches("<circle").count(), 1);
        assert_eq!(svg.matches("fill=\"#D62728\"").count(), 1);
        let t = texts(&svg);
        for want in [
            "t (ECE 0.050)",
            "4",
            "accuracy",
            "confidence (top-label probability)",
        ] {
            assert!(t.contains(&want), "{want} in {t:?}");
        }
        for tick in ["0.0", "0.4", "1.0"] {
            assert_eq!(
                t.iter().filter(|s| **s == tick).count(),
                2,
                "{tick} on both axes"
            );
        }
    }
}
