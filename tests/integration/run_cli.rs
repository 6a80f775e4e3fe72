//! `emomon run --headless` end to end with a real (tiny, random-weight) Whisper
//! model: one record per utterance with the right times, the log and stdout
//! agree, Ctrl-C shuts down in order, and `kill -9` leaves a readable log with
//! every completed utterance.

use crate::run_common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use emomon::session_log::{self, IssueKind, Record};
use run_common::{
    decode_16k, emomon, fixture_clips, headless_run, segment, session_audio, shared_data,
    tiny_model, write_wav,
};

/// Runs `emomon run --headless` on `wav` with the tiny model; returns the child.
fn spawn_run(wav: &Path, log: &Path, extra: &[&str]) -> Child {
    headless_run(wav, log, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills the child if a test goes wrong, so nothing outlives it.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn headless_run_on_real_speech_logs_one_record_per_utterance() {
    let Some(data) = shared_data("headless_run_on_real_speech_logs_one_record_per_utterance")
    else {
        return;
    };
    let clips: Vec<PathBuf> = [
        "ravdess/03-01-05-02-01-01-09.flac",
        "emodb/08a01Fd.wav",
        "ravdess/03-01-04-01-02-01-12.flac",
        "urdu/SM1_F10_A010.wav",
    ]
    .iter()
    .map(|c| data.join(c))
    .collect();
    let audio = session_audio(&clips, 2.0);
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("session.wav");
    write_wav(&wav, &audio.samples, 16_000);
    let expected = segment(&decode_16k(&wav), 16_000, &Default::default());
    assert!(expected.len() >= clips.len(), "{expected:?}");

    let log = dir.path().join("session.jsonl");
    let out = spawn_run(&wav, &log, &[]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("session log"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let (summary, records) = lines.split_last().unwrap();

    // One record per utterance, the segmenter's times, distributions summing to 1.
    assert_eq!(records.len(), expected.len(), "{stdout}");
    for (line, u) in records.iter().zip(&expected) {
        let r = json(line);
        assert_eq!(r["type"], "utterance");
        assert_eq!(r["id"], u.id);
        assert_eq!(r["start_s"].as_f64(), Some(u.start_s));
        assert_eq!(r["end_s"].as_f64(), Some(u.end_s));
        let probs: Vec<f64> = r["probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        let labels = r["labels"].as_array().unwrap().len();
        assert!(labels >= 2);
        assert_eq!(probs.len(), labels);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{probs:?}");
        assert_eq!(r["logits"].as_array().unwrap().len(), labels);
        assert!(r["prosody"].is_object(), "{line}");
        // Within one of the clips, not in a gap between them.
        let inside = audio
            .clips
            .iter()
            .any(|(s, e)| u.start_s >= s - 0.1 && u.end_s <= e + 0.1);
        assert!(
            inside,
            "utterance {} ({}–{} s) outside every clip {:?}",
            u.id, u.start_s, u.end_s, audio.clips
        );
    }
    // Prosody is sane on real speech: F0 in the human range for most utterances
    // (a short split-off fragment may have no voiced frame).
    let f0: Vec<f64> = records
        .iter()
        .filter_map(|l| json(l)["prosody"]["f0_median_hz"].as_f64())
        .collect();
    assert!(f0.len() * 2 >= records.len(), "{f0:?}");
    assert!(f0.iter().all(|f| (60.0..=500.0).contains(f)), "{f0:?}");
    // Every clip was heard.
    for (s, e) in &audio.spans {
        assert!(
            expected.iter().any(|u| u.start_s < *e && u.end_s > *s),
            "clip {s}–{e} produced no utterance"
        );
    }
    let summary = json(summary);
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["reason"], "end of input");
    assert_eq!(summary["utterances"], expected.len());
    assert_eq!(summary["skipped_utterances"], 0);

    // The log holds the same records, byte for byte, between start and end.
    let text = std::fs::read_to_string(&log).unwrap();
    let log_lines: Vec<&str> = text.lines().collect();
    assert_eq!(log_lines.len(), records.len() + 2);
    assert_eq!(&log_lines[1..=records.len()], records);
    let parsed = session_log::read(&log).unwrap();
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    let start = parsed.session_start().unwrap();
    assert!(start.model.contains("tiny-whisper"));
    assert!(start.source.starts_with("file:"));
    assert!(start.config["segmenter"]["hangover_ms"].is_u64());
    match &parsed.entries.last().unwrap().entry.record {
        Record::SessionEnd(e) => assert_eq!(e.utterances, expected.len() as u64),
        other => panic!("{other:?}"),
    }
    // Nothing but the log was written (no audio unless asked).
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["session.jsonl", "session.wav"]);
}

/// A longer session from the repository's clips, for the live-pace tests.
fn long_session(dir: &Path) -> PathBuf {
    let clips: Vec<_> = (0..4).flat_map(|_| fixture_clips()).collect();
    let audio = session_audio(&clips, 1.0);
    let wav = dir.join("long.wav");
    write_wav(&wav, &audio.samples, 16_000);
    wav
}

/// Reads stdout lines until `n` utterance records have been printed.
fn wait_for_utterances(child: &mut Child, n: usize) -> (Vec<String>, BufReader<ChildStdout>) {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while seen.len() < n {
        assert!(Instant::now() < deadline, "no utterance records in time");
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("emomon ended before {n} utterances: {seen:?}");
        }
        if json(&line)["type"] == "utterance" {
            seen.push(line.trim_end().to_string());
        }
    }
    (seen, reader)
}

#[test]
fn kill_9_leaves_a_log_with_every_completed_utterance() {
    let dir = tempfile::tempdir().unwrap();
    let wav = long_session(dir.path());
    let log = dir.path().join("crash.jsonl");
    let mut child = Reaper(spawn_run(&wav, &log, &["--realtime"]));
    let (printed, _) = wait_for_utterances(&mut child.0, 2);
    child.0.kill().unwrap(); // SIGKILL: no chance to write anything more
    child.0.wait().unwrap();

    let parsed = session_log::read(&log).unwrap();
    assert!(parsed.first_error().is_none(), "{:?}", parsed.issues);
    assert!(parsed.session_start().is_some());
    let text = std::fs::read_to_string(&log).unwrap();
    // Every utterance that was reported is in the log (written before echoing).
    for line in &printed {
        assert!(text.lines().any(|l| l == line), "missing {line}");
    }
    assert!(
        !parsed
            .entries
            .iter()
            .any(|e| matches!(e.entry.record, Record::SessionEnd(_))),
        "a killed session has no session_end"
    );

    // A write cut mid-record (what a crash can leave) is tolerated by every reader.
    let mut cut = text.clone().into_bytes();
    let last = text.lines().nth(1).unwrap();
    cut.extend_from_slice(&last.as_bytes()[..last.len() / 2]);
    let cut_log = dir.path().join("cut.jsonl");
    std::fs::write(&cut_log, &cut).unwrap();
    let reread = session_log::read(&cut_log).unwrap();
    assert_eq!(reread.entries.len(), parsed.entries.len());
    assert!(matches!(
        reread.issues.last().map(|i| &i.kind),
        Some(IssueKind::TruncatedLastLine)
    ));
    let csv = emomon()
        .args(["export", "--csv"])
        .arg(&cut_log)
        .output()
        .unwrap();
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let utterances = parsed
        .entries
        .iter()
        .filter(|e| matches!(e.entry.record, Record::Utterance(_)))
        .count();
    assert_eq!(
        String::from_utf8(csv.stdout).unwrap().lines().count(),
        utterances + 1
    );
    let html = dir.path().join("cut.html");
    let report = emomon()
        .arg("report")
        .arg(&cut_log)
        .arg("-o")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("truncated last line"));
    assert!(page.contains("abruptly"));
}

#[test]
fn ctrl_c_finishes_in_flight_work_and_ends_the_log_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let wav = long_session(dir.path());
    let log = dir.path().join("stopped.jsonl");
    let mut child = Reaper(spawn_run(&wav, &log, &["--realtime"]));
    let (_, mut rest) = wait_for_utterances(&mut child.0, 1);
    let pid = child.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let mut tail = String::new();
    std::io::Read::read_to_string(&mut rest, &mut tail).unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let summary = json(tail.lines().last().unwrap());
    assert_eq!(summary["reason"], "interrupted (SIGINT)");

    let parsed = session_log::read(&log).unwrap();
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    let Record::SessionEnd(end) = &parsed.entries.last().unwrap().entry.record else {
        panic!("no session_end");
    };
    assert_eq!(end.reason, "interrupted (SIGINT)");
    // Every utterance cut before the stop is accounted for: ids are 0..n with no
    // gap, each either scored or skipped with a reason.
    let mut ids: Vec<u64> = parsed
        .entries
        .iter()
        .filter_map(|e| match &e.entry.record {
            Record::Utterance(u) => Some(u.id),
            Record::Skipped(s) => Some(s.utterance_id),
            _ => None,
        })
        .collect();
    ids.sort();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        end.utterances + end.skipped_utterances,
        ids.len() as u64,
        "{end:?}"
    );
    // Audio stopped well before the end of the 30 s file.
    assert!(ids.len() < 12, "{ids:?}");
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_no_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("never.jsonl");
    let missing = dir.path().join("missing.wav");
    let out = spawn_run(&missing, &log, &[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.wav"), "{err}");
    assert!(!log.exists(), "no empty session for a typo");

    let wav = dir.path().join("ok.wav");
    write_wav(&wav, &vec![0.0; 16_000], 16_000);
    let out = emomon()
        .args(["run", "--headless", "--input"])
        .arg(&wav)
        .args(["--model", "/nonexistent/model-dir", "--session-log"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model-dir"), "{err}");
    assert!(!log.exists());

    // An unwritable log path names the path.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let bad_log = blocker.join("s.jsonl");
    let out = spawn_run(&wav, &bad_log, &[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a-file"), "{err}");
}

/// A log that stops accepting writes mid-session (here: a file-size limit, the way
/// a full disk behaves) ends the session with an error naming the file, and every
/// record written before stays readable.
#[cfg(unix)]
#[test]
fn a_log_that_cannot_be_written_stops_the_session_and_keeps_what_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let wav = long_session(dir.path());
    let log = dir.path().join("full.jsonl");
    // `ulimit -f 2`: at most 2 blocks (1–2 KiB): session_start and about one
    // utterance fit. emomon itself ignores SIGXFSZ (issue 18 item 4: it used to be
    // killed by it, exit 153, without a word), so the write fails with EFBIG.
    let script = format!(
        "ulimit -f 2; exec '{}' run --headless --input '{}' --model '{}' --session-log '{}'",
        env!("CARGO_BIN_EXE_emomon"),
        wav.display(),
        tiny_model().display(),
        log.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("full.jsonl"), "{err}");
    assert!(err.contains("File too large"), "{err}");
    assert!(err.contains("utterances recorded so far"), "{err}");
    let parsed = session_log::read(&log).unwrap();
    assert!(parsed.first_error().is_none(), "{:?}", parsed.issues);
    assert!(parsed.session_start().is_some());
    // Every record echoed to stdout before the failure is in the log.
    let text = std::fs::read_to_string(&log).unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if json(line)["type"] == "utterance" {
            assert!(text.lines().any(|l| l == line), "missing {line}");
        }
    }
}

/// Issue 18 item 7: `run` exited 0 on a truncated file (the error was only inside
/// the summary) where `segment` and `score` exit 1. The utterances before the cut
/// are still scored and logged; then the exit says the input failed.
#[test]
fn a_truncated_input_is_scored_up_to_the_cut_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let wav = long_session(dir.path());
    let bytes = std::fs::read(&wav).unwrap();
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() * 7 / 10]).unwrap();
    let log = dir.path().join("cut.jsonl");
    let out = spawn_run(&cut, &log, &[]).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("truncated") && err.contains("cut.wav"),
        "{err}"
    );
    let parsed = session_log::read(&log).unwrap();
    let scored = parsed
        .entries
        .iter()
        .filter(|e| matches!(e.entry.record, Record::Utterance(_)))
        .count();
    assert!(
        scored >= 2,
        "utterances before the cut are logged: {scored}"
    );
    assert!(
        matches!(
            parsed.entries.last().map(|e| &e.entry.record),
            Some(Record::SessionEnd(_))
        ),
        "the session still ends in order"
    );
}
