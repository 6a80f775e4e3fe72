//! `emomon export --csv`: one row per scored utterance, for spreadsheets and R/pandas.
//!
//! Columns: `id, start_s, end_s, duration_s, result_t_s, latency_ms, level_db,
//! top_label, entropy_norm, top2_margin`, then `p_<label>` and `logit_<label>` for
//! every label in the session's order, the seven prosody descriptors, `method`,
//! `model` and `speaker` (empty when the session did not track speakers). Undefined values (no prosody, no logits) are empty cells. The `csv`
//! crate quotes text cells per RFC 4180 when they need it. Skipped utterances and
//! markers are not rows (they are not utterance results); the session log keeps them.

use std::io::Write;

use super::data::SessionData;

/// Writes the CSV for `data` to `out`.
pub fn write_csv(data: &SessionData, out: &mut dyn Write) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    let labels = data.labels();
    let mut header: Vec<String> = [
        "id",
        "start_s",
        "end_s",
        "duration_s",
        "result_t_s",
        "latency_ms",
        "level_db",
        "top_label",
        "entropy_norm",
        "top2_margin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(labels.iter().map(|l| format!("p_{l}")));
    header.extend(labels.iter().map(|l| format!("logit_{l}")));
    header.extend(
        [
            "f0_median_hz",
            "f0_range_hz",
            "voiced_fraction",
            "energy_db_mean",
            "energy_db_var",
            "speaking_rate_syll_s",
            "pause_ratio",
            "method",
            "model",
            "speaker",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    csv.write_record(&header)?;
    // f32 values print in their own shortest form (163.3, not 163.300003).
    let num32 = |v: Option<f32>| {
        v.filter(|x| x.is_finite())
            .map_or(String::new(), |x| x.to_string())
    };
    for u in &data.utterances {
        let mut row = vec![
            u.id.to_string(),
            fmt(u.start_s),
            fmt(u.end_s),
            fmt(u.end_s - u.start_s),
            fmt(u.t_s),
            fmt(u.latency_ms),
            num32(u.level_db),
            labels[u.top()].clone(),
            fmt(u.entropy_norm()),
            fmt(u.top2_margin()),
        ];
        row.extend(u.probs.iter().map(|&p| fmt(p)));
        // Logits were f32 in the log; the cast back is exact.
        row.extend(u.logits.iter().map(|&l| num32(Some(l as f32))));
        let p = u.prosody;
        row.extend([
            num32(p.and_then(|p| p.f0_median_hz)),
            num32(p.and_then(|p| p.f0_range_hz)),
            num32(p.map(|p| p.voiced_fraction)),
            num32(p.and_then(|p| p.energy_db_mean)),
            num32(p.and_then(|p| p.energy_db_var)),
            num32(p.and_then(|p| p.speaking_rate_syll_s)),
            num32(p.and_then(|p| p.pause_ratio)),
            u.method.clone(),
            u.model.clone(),
            u.speaker.clone().unwrap_or_default(),
        ]);
        csv.write_record(&row)?;
    }
    csv.flush()
}

/// Shortest round-trippable form, without float noise like `0.30000000000000004`.
fn fmt(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_short() {
        assert_eq!(fmt(0.1 + 0.2), "0.3");
        assert_eq!(fmt(2.0), "2");
        assert_eq!(fmt(-0.0000001), "0");
    }
}
