//! `emomon export --csv`: one row per scored utterance, columns per label.

use crate::run_common;

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
    assert_eq!(header.len(), 10 + 2 * labels.len() + 10);
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

/// The sample log with its aggregation half-life replaced and extra lines appended.
fn sample_with(dir: &Path, name: &str, half_life: f64, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(sample()).unwrap();
    let text = text.replacen(
        "\"half_life_s\":20.0",
        &format!("\"half_life_s\":{half_life}"),
        1,
    );
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}{extra}")).unwrap();
    path
}

fn export_rows(log: &Path, extra: &[&str]) -> (std::process::Output, usize) {
    let run = emomon()
        .args(["export", "--csv"])
        .arg(log)
        .args(extra)
        .output()
        .unwrap();
    let rows = String::from_utf8_lossy(&run.stdout)
        .lines()
        .count()
        .saturating_sub(1);
    (run, rows)
}

/// Issue 18 item 5: with a half-life far below an utterance's length every
/// decayed weight rounded to zero and export wrote no rows (exit 0); zero-length
/// utterances and huge times were dropped too. Every utterance is a row now.
#[test]
fn export_keeps_every_utterance_whatever_the_weights_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let n = utterances(&sample()).len();
    let tiny = sample_with(dir.path(), "tiny.jsonl", 0.0005, "");
    let (run, rows) = export_rows(&tiny, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(rows, n);

    let odd = r#"{"schema":1,"t_s":400.0,"type":"utterance","id":900,"start_s":300.0,"end_s":300.0,"labels":["neutral","happy","sad","angry","fear","disgust","surprise"],"probs":[0.1,0.1,0.1,0.1,0.1,0.1,0.4],"logits":[],"method":"first-token","model":"m","latency_ms":1.0}
{"schema":1,"t_s":1e300,"type":"utterance","id":901,"start_s":1e300,"end_s":1e300,"labels":["neutral","happy","sad","angry","fear","disgust","surprise"],"probs":[0.4,0.1,0.1,0.1,0.1,0.1,0.1],"logits":[],"method":"first-token","model":"m","latency_ms":1.0}
"#;
    let odd = sample_with(dir.path(), "odd.jsonl", 20.0, odd);
    let (run, rows) = export_rows(&odd, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(rows, n + 2);
    // The report of the same log finishes and counts them too.
    let html = dir.path().join("odd.html");
    let run = emomon()
        .arg("report")
        .arg(&odd)
        .arg("-o")
        .arg(&html)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains(&format!("report of {} utterances", n + 2)),
        "{err}"
    );
}

/// Issue 18 item 3: a crash left a partial line, the next session was appended
/// onto it, and one bad line mid-file refused the whole log; two sessions were
/// merged. Now every session is readable on its own and the skips are reported.
#[test]
fn export_reads_each_session_of_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let n = utterances(&sample()).len();
    let text = std::fs::read_to_string(sample()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut damaged = String::new();
    for (i, line) in lines.iter().enumerate() {
        damaged.push_str(line);
        damaged.push('\n');
        if i == 3 {
            damaged.push_str("{\"schema\":1,\"t_s\":\"soon\",\"type\":\"marker\"}\n");
        }
    }
    // A record cut short, then a second session glued onto it (start + 2 utterances).
    damaged.push_str(&lines[1][..lines[1].len() / 2]);
    for line in &lines[..3] {
        damaged.push_str(line);
        damaged.push('\n');
    }
    let path = dir.path().join("damaged.jsonl");
    std::fs::write(&path, damaged).unwrap();

    let (run, rows) = export_rows(&path, &[]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert_eq!(rows, 2, "the last session by default");
    assert!(err.contains("holds 2 sessions"), "{err}");

    let (run, rows) = export_rows(&path, &["--session", "1"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert_eq!(rows, n, "every utterance of session 1");
    assert!(err.contains("line 5: malformed record"), "{err}");
    assert!(err.contains("cut short"), "{err}");

    let (run, _) = export_rows(&path, &["--strict"]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("damaged.jsonl:5: malformed record"), "{err}");
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

/// Issue 17: a schema 2 log carries each utterance's speaker into the CSV; a schema 1
/// line in the same file (an old log appended to) reads with an empty speaker cell.
#[test]
fn csv_speaker_column_follows_the_log_schema() {
    let lines = [
        r#"{"schema":1,"t_s":0.0,"type":"session_start","emomon_version":"0.1.0","source":"memory","model":"m","device":"cpu","method":"first-token","labels":["calm","sad"],"config":null}"#,
        r#"{"schema":1,"t_s":2.0,"type":"utterance","id":1,"start_s":0.5,"end_s":1.5,"labels":["calm","sad"],"probs":[0.7,0.3],"logits":[],"method":"first-token","model":"m","latency_ms":1.0}"#,
        r#"{"schema":2,"t_s":4.0,"type":"utterance","id":2,"start_s":2.5,"end_s":3.5,"labels":["calm","sad"],"probs":[0.2,0.8],"logits":[],"method":"first-token","model":"m","latency_ms":1.0,"speaker":"client"}"#,
        r#"{"schema":2,"t_s":6.0,"type":"utterance","id":3,"start_s":4.5,"end_s":5.5,"labels":["calm","sad"],"probs":[0.9,0.1],"logits":[],"method":"first-token","model":"m","latency_ms":1.0,"speaker":"S1"}"#,
    ];
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("speakers.jsonl");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let stdout = export_csv(&log, &[]);
    let mut reader = csv::Reader::from_reader(stdout.as_slice());
    let col = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "speaker")
        .expect("speaker column");
    let speakers: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[col].to_string())
        .collect();
    assert_eq!(speakers, ["", "client", "S1"]);
}
