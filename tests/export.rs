//! `emomon export --csv`: one row per scored utterance, columns per label.

mod run_common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use emomon::session_log::{self, Record, UtteranceRecord};
use run_common::emomon;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/sample.jsonl")
}

fn utterances(log: &Path) -> Vec<UtteranceRecord> {
    session_log::read(log)
        .unwrap()
        .entries
        .into_iter()
        .filter_map(|e| match e.entry.record {
            Record::Utterance(u) => Some(u),
            _ => None,
        })
        .collect()
}

/// `emomon export --csv LOG ARGS…`, which must succeed; its stdout.
fn export_csv(log: &Path, args: &[&OsStr]) -> Vec<u8> {
    let run = emomon()
        .args(["export", "--csv"])
        .arg(log)
        .args(args)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    run.stdout
}

#[test]
fn csv_has_one_row_per_utterance_with_its_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.csv");
    export_csv(&sample(), &["-o".as_ref(), out.as_os_str()]);
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    let expected = utterances(&sample());
    assert_eq!(
        rows.len(),
        expected.len() + 1,
        "header + one row per utterance"
    );
    let header = &rows[0];
    let labels = &expected[0].labels;
    assert_eq!(header.len(), 10 + 2 * labels.len() + 9);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for (row, u) in rows[1..].iter().zip(&expected) {
        assert_eq!(row.len(), header.len());
        assert_eq!(row[col("id")], u.id.to_string());
        assert_eq!(row[col("start_s")].parse::<f64>().unwrap(), u.start_s);
        assert_eq!(row[col("end_s")].parse::<f64>().unwrap(), u.end_s);
        let probs: Vec<f64> = labels
            .iter()
            .map(|l| row[col(&format!("p_{l}"))].parse().unwrap())
            .collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        let logit: f32 = row[col(&format!("logit_{}", labels[0]))].parse().unwrap();
        assert_eq!(logit, u.logits[0]);
        let top = (0..labels.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap();
        assert_eq!(row[col("top_label")], labels[top]);
        let f0 = u.prosody.and_then(|p| p.f0_median_hz);
        assert_eq!(row[col("f0_median_hz")].parse::<f32>().ok(), f0);
    }
}

#[test]
fn export_to_stdout_and_errors() {
    let run = emomon()
        .args(["export", "--csv"])
        .arg(sample())
        .output()
        .unwrap();
    assert!(run.status.success());
    let rows = String::from_utf8(run.stdout).unwrap().lines().count();
    assert_eq!(rows, utterances(&sample()).len() + 1);

    // --csv is required (the format is explicit); a missing log is named.
    let run = emomon().arg("export").arg(sample()).output().unwrap();
    assert!(!run.status.success());
    let dir = tempfile::tempdir().unwrap();
    let run = emomon()
        .args(["export", "--csv"])
        .arg(dir.path().join("gone.jsonl"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("gone.jsonl"));
}

#[test]
fn csv_cells_with_commas_quotes_and_line_breaks_read_back_whole() {
    let model = "fixture \"v2\", tuned\nsecond line";
    let json_model = serde_json::to_string(model).unwrap();
    let text = std::fs::read_to_string(sample())
        .unwrap()
        .replace("\"synthetic-fixture\"", &json_model);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("quoted.jsonl");
    std::fs::write(&log, text).unwrap();
    let stdout = export_csv(&log, &[]);
    let mut reader = csv::Reader::from_reader(stdout.as_slice());
    let model_col = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "model")
        .unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let expected = utterances(&log);
    assert_eq!(rows.len(), expected.len());
    for (row, u) in rows.iter().zip(&expected) {
        assert_eq!(&row[0], u.id.to_string());
        assert_eq!(&row[model_col], model);
    }
}
