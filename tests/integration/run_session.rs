//! The session loop (`emomon::run::run_session`) with a controllable scorer:
//! everything the pipeline reports ends up in the session log, a slow scorer
//! causes counted, logged skips and nothing else is lost, memory stays bounded,
//! and a panicking scorer is reported without ending the session.

use crate::run_common;

use std::path::Path;

use emomon::aggregate::AggregatorConfig;
use emomon::audio::AudioSource;
use emomon::audio::memory::MemorySource;
use emomon::pipeline::{PipelineConfig, SourceFactory};
use emomon::run::{ClockKind, RunOptions, RunSummary, run_session};
use emomon::scoring::Scorer;
use emomon::session_log::{self, Record, SessionLog};
use run_common::{TestScorer, fixture_clips, segment, session_audio};

fn options(log: &Path, score_queue: usize) -> RunOptions {
    RunOptions {
        pipeline: PipelineConfig {
            score_queue,
            ..PipelineConfig::default()
        },
        aggregation: AggregatorConfig::default(),
        log_path: log.to_path_buf(),
        source_name: "memory".into(),
        clock: ClockKind::Audio,
        save_audio: None,
        dashboard: false,
        echo: None,
        fps: 15,
        settings: serde_json::Value::Null,
        speakers: None,
    }
}

fn memory(samples: Vec<f32>) -> SourceFactory {
    Box::new(move || {
        Ok(Box::new(MemorySource::new("session", samples, 16_000, 1)) as Box<dyn AudioSource>)
    })
}

fn run(
    samples: Vec<f32>,
    options: RunOptions,
    scorer: impl Scorer + 'static,
) -> (RunSummary, SessionLog) {
    let log_path = options.log_path.clone();
    let summary = run_session(options, memory(samples), Box::new(scorer)).unwrap();
    let log = session_log::read(&log_path).unwrap();
    assert!(log.issues.is_empty(), "{:?}", log.issues);
    (summary, log)
}

fn utterance_ids(log: &SessionLog) -> Vec<u64> {
    log.entries
        .iter()
        .filter_map(|e| match &e.entry.record {
            Record::Utterance(u) => Some(u.id),
            _ => None,
        })
        .collect()
}

fn skipped(log: &SessionLog) -> Vec<(u64, String, u64)> {
    log.entries
        .iter()
        .filter_map(|e| match &e.entry.record {
            Record::Skipped(s) => Some((s.utterance_id, s.reason.clone(), s.total)),
            _ => None,
        })
        .collect()
}

fn session_end(log: &SessionLog) -> &session_log::SessionEnd {
    match &log.entries.last().unwrap().entry.record {
        Record::SessionEnd(e) => e,
        other => panic!("last record is {other:?}"),
    }
}

#[test]
fn every_utterance_is_logged_with_its_times_when_the_scorer_keeps_up() {
    let audio = session_audio(&fixture_clips(), 1.0);
    let expected = segment(&audio.samples, 16_000, &Default::default());
    let dir = tempfile::tempdir().unwrap();
    let (summary, log) = run(
        audio.samples.clone(),
        options(&dir.path().join("s.jsonl"), 16),
        TestScorer::new(0),
    );
    assert!(matches!(
        log.entries[0].entry.record,
        Record::SessionStart(_)
    ));
    let records: Vec<_> = log
        .entries
        .iter()
        .filter_map(|e| match &e.entry.record {
            Record::Utterance(u) => Some((e.entry.t_s, u.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(records.len(), expected.len(), "one record per utterance");
    for ((t_s, r), u) in records.iter().zip(&expected) {
        assert_eq!((r.id, r.start_s, r.end_s), (u.id, u.start_s, u.end_s));
        assert!((r.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(r.prosody.is_some());
        // Audio clock: a result is stamped at its utterance's end + latency.
        assert!(*t_s >= r.end_s, "{t_s} < {}", r.end_s);
    }
    let end = session_end(&log);
    assert_eq!(end.reason, "end of input");
    assert_eq!(
        (end.utterances, end.skipped_utterances),
        (expected.len() as u64, 0)
    );
    assert_eq!(summary.utterances, expected.len() as u64);
    // Times are non-decreasing through the log.
    let ts: Vec<f64> = log.entries.iter().map(|e| e.entry.t_s).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    let session = summary.aggregate.unwrap().session.unwrap();
    assert!((session.probs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}

#[test]
fn a_slow_scorer_skips_counted_utterances_and_loses_nothing_else() {
    // Capture runs ~1000x real time over 24 utterances; 120 ms per utterance
    // cannot keep up, so the one-slot queue must give way.
    let clips: Vec<_> = (0..8).flat_map(|_| fixture_clips()).collect();
    let audio = session_audio(&clips, 0.8);
    let expected = segment(&audio.samples, 16_000, &Default::default());
    assert_eq!(expected.len(), 24);
    let dir = tempfile::tempdir().unwrap();
    let (summary, log) = run(
        audio.samples,
        options(&dir.path().join("s.jsonl"), 1),
        TestScorer::new(120),
    );
    let scored = utterance_ids(&log);
    let skips = skipped(&log);
    assert!(
        !skips.is_empty(),
        "the scorer cannot keep up: expected skips"
    );
    assert!(
        skips.iter().all(|s| s.1.contains("scorer behind")),
        "{skips:?}"
    );
    // The skip counter in the records is exact and matches the end record.
    let totals: Vec<u64> = skips.iter().map(|s| s.2).collect();
    assert_eq!(totals, (1..=skips.len() as u64).collect::<Vec<_>>());
    let end = session_end(&log);
    assert_eq!(end.skipped_utterances, skips.len() as u64);
    assert_eq!(end.utterances, scored.len() as u64);
    assert_eq!(summary.skipped_utterances, skips.len() as u64);
    // Nothing else lost: scored + skipped is every utterance, each exactly once.
    let mut all: Vec<u64> = scored
        .iter()
        .copied()
        .chain(skips.iter().map(|s| s.0))
        .collect();
    all.sort();
    assert_eq!(all, expected.iter().map(|u| u.id).collect::<Vec<_>>());
    // The newest utterance is always scored (the policy drops the oldest waiting).
    assert!(scored.contains(&expected.last().unwrap().id));
    // Bounded: outstanding utterances never exceed queue + batch in flight + the
    // one being handed over, however far behind the scorer is.
    assert!(
        summary.max_pending <= 3,
        "max pending {}",
        summary.max_pending
    );
}

#[test]
fn a_panicking_scorer_is_reported_and_the_session_goes_on() {
    let audio = session_audio(&fixture_clips(), 1.0);
    let dir = tempfile::tempdir().unwrap();
    let scorer = TestScorer {
        panic_on: Some(1),
        ..TestScorer::new(0)
    };
    let (summary, log) = run(
        audio.samples,
        options(&dir.path().join("s.jsonl"), 16),
        scorer,
    );
    assert_eq!(utterance_ids(&log), vec![0, 2]);
    let skips = skipped(&log);
    assert_eq!(skips.len(), 1);
    assert_eq!(skips[0].0, 1);
    assert!(skips[0].1.contains("panicked"), "{skips:?}");
    assert!(
        summary
            .worker_errors
            .iter()
            .any(|e| e.contains("breaks on utterance 1")),
        "{:?}",
        summary.worker_errors
    );
    assert_eq!(session_end(&log).reason, "end of input");
}

#[test]
fn an_unwritable_log_is_an_error_naming_it_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let path = blocker.join("s.jsonl");
    let err = run_session(
        options(&path, 4),
        memory(vec![0.0; 16_000]),
        Box::new(TestScorer::new(0)),
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&path.display().to_string()) || msg.contains("file"),
        "{msg}"
    );
}

#[test]
fn save_audio_writes_one_wav_per_utterance_and_nothing_without_it() {
    let audio = session_audio(&fixture_clips(), 1.0);
    let dir = tempfile::tempdir().unwrap();
    let wavs = dir.path().join("audio");
    let mut opts = options(&dir.path().join("s.jsonl"), 16);
    opts.save_audio = Some(wavs.clone());
    let (summary, _) = run(audio.samples.clone(), opts, TestScorer::new(0));
    let mut files: Vec<_> = std::fs::read_dir(&wavs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len() as u64, summary.utterances);
    assert_eq!(files[0], "utterance-000000.wav");
    let reader = hound::WavReader::open(wavs.join(&files[0])).unwrap();
    assert_eq!(reader.spec().sample_rate, 16_000);
    assert!(reader.len() > 16_000);

    let other = tempfile::tempdir().unwrap();
    run(
        audio.samples,
        options(&other.path().join("s.jsonl"), 16),
        TestScorer::new(0),
    );
    let names: Vec<_> = std::fs::read_dir(other.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["s.jsonl"], "no audio is written unless asked");
}

#[test]
fn a_file_read_at_full_speed_waits_for_a_slow_scorer_instead_of_skipping() {
    let clips: Vec<_> = (0..3).flat_map(|_| fixture_clips()).collect();
    let audio = session_audio(&clips, 0.8);
    let expected = segment(&audio.samples, 16_000, &Default::default());
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&dir.path().join("s.jsonl"), 1);
    opts.pipeline.backpressure = emomon::pipeline::Backpressure::Wait;
    let (summary, log) = run(audio.samples, opts, TestScorer::new(60));
    assert!(skipped(&log).is_empty());
    assert_eq!(
        utterance_ids(&log),
        expected.iter().map(|u| u.id).collect::<Vec<_>>()
    );
    assert!(
        summary.max_pending <= 3,
        "max pending {}",
        summary.max_pending
    );
}

/// Delivers real speech, then panics mid-stream (a decoder bug, say).
struct BreaksAfter {
    inner: MemorySource,
    blocks: usize,
}

impl AudioSource for BreaksAfter {
    fn info(&self) -> &emomon::audio::SourceInfo {
        self.inner.info()
    }
    fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool, emomon::audio::AudioError> {
        self.blocks = self.blocks.checked_sub(1).expect("source breaks");
        self.inner.read_block(out)
    }
}

#[test]
fn a_panic_in_capture_ends_the_session_with_an_error_and_keeps_the_log() {
    let audio = session_audio(&fixture_clips(), 1.0);
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir.path().join("s.jsonl"), 16);
    let log_path = opts.log_path.clone();
    let source: SourceFactory = Box::new(move || {
        Ok(Box::new(BreaksAfter {
            inner: MemorySource::new("session", audio.samples, 16_000, 1),
            blocks: 5,
        }) as Box<dyn AudioSource>)
    });
    let summary = run_session(opts, source, Box::new(TestScorer::new(0))).unwrap();
    let error = summary.capture_error.unwrap();
    assert!(error.contains("capture failed: source breaks"), "{error}");
    assert!(
        summary.reason.starts_with("input error"),
        "{}",
        summary.reason
    );
    let log = session_log::read(&log_path).unwrap();
    assert_eq!(session_end(&log).reason, summary.reason);
}
