//! The committed sample session log, `tests/fixtures/sessions/sample.jsonl`.
//!
//! The log is synthetic (no model, no audio): a deterministic ~3.5-minute session that
//! drifts neutral → happy → sad/neutral (mixed) → angry (with lost audio and a skipped
//! utterance) → fear/neutral → neutral, with two markers. It exists so the dashboard,
//! `emomon replay` and the report can be demonstrated and tested without a model.
//!
//! This test regenerates it in memory and checks the committed file matches, so the
//! fixture cannot drift from the schema. To rewrite it after a schema change:
//! `EMOMON_REGEN_FIXTURES=1 cargo test --test replay_sample`.

use std::path::PathBuf;

use emomon::session_log::{
    self, DroppedRecord, MarkerRecord, ProsodyRecord, Record, SessionEnd, SessionLogWriter,
    SessionStart, SkippedRecord, UtteranceRecord,
};

const LABELS: [&str; 7] = [
    "neutral", "happy", "sad", "angry", "fear", "disgust", "surprise",
];
const MODEL: &str = "synthetic-fixture";

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/sample.jsonl")
}

/// Small deterministic generator (xorshift), so the fixture is reproducible everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-1, 1).
    fn sym(&mut self) -> f64 {
        self.next() * 2.0 - 1.0
    }
}

/// One phase of the scripted session: until `until_s`, logits around `logits`, prosody
/// around (f0 Hz, f0 range Hz, energy dB, syllables/s, pause ratio).
struct Phase {
    until_s: f64,
    logits: [f64; 7],
    prosody: (f64, f64, f64, f64, f64),
}

const PHASES: [Phase; 6] = [
    Phase {
        until_s: 38.0,
        logits: [3.2, 1.0, 0.6, -0.5, -0.3, -1.0, 0.2],
        prosody: (165.0, 45.0, -26.0, 4.0, 0.12),
    },
    Phase {
        until_s: 78.0,
        logits: [1.7, 3.1, -0.5, -1.0, -0.8, -1.2, 1.6],
        prosody: (195.0, 85.0, -22.0, 4.8, 0.08),
    },
    Phase {
        until_s: 128.0,
        logits: [2.3, -0.4, 2.6, -0.6, 0.9, -0.8, -0.9],
        prosody: (150.0, 30.0, -30.0, 3.1, 0.25),
    },
    Phase {
        until_s: 165.0,
        logits: [0.9, -1.0, 0.7, 3.3, 0.6, 1.6, 0.4],
        prosody: (210.0, 95.0, -17.0, 5.3, 0.05),
    },
    Phase {
        until_s: 192.0,
        logits: [2.0, -0.6, 1.2, 0.2, 2.1, -0.5, 1.1],
        prosody: (200.0, 70.0, -25.0, 4.6, 0.15),
    },
    Phase {
        until_s: 212.0,
        logits: [3.0, 0.9, 0.8, -0.6, 0.3, -1.0, -0.2],
        prosody: (168.0, 50.0, -25.0, 4.1, 0.12),
    },
];

fn round(x: f64, digits: i32) -> f32 {
    r64(x, digits) as f32
}

fn r64(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// The scripted session as (t_s, record) pairs.
fn records() -> Vec<(f64, Record)> {
    let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
    let mut rng = Rng(0x5e_ede3_0e30);
    let mut out = vec![(
        0.0,
        Record::SessionStart(SessionStart {
            started_unix_s: Some(1_795_442_400.0),
            emomon_version: "0.1.0".into(),
            source: "synthetic: tests/replay_sample.rs (no audio, no model)".into(),
            model: MODEL.into(),
            device: "cpu".into(),
            method: "first-token".into(),
            labels: labels.clone(),
            config: serde_json::json!({
                "vad": {"aggressiveness": 2, "frame_ms": 30},
                "segmenter": {"pre_roll_ms": 300, "hangover_ms": 400, "min_s": 0.5, "max_s": 12.0},
                "aggregation": {"half_life_s": 20.0, "windows_s": [30.0, 120.0]},
                "temperature": 1.0
            }),
        }),
    )];
    let mut t = 1.4;
    let mut id = 0u64;
    let mut scored = 0u64;
    let mut markers = [95.0, 181.0].into_iter().peekable();
    let mut dropped_done = false;
    while t < 208.0 {
        let Some(phase) = PHASES.iter().find(|p| t < p.until_s) else {
            break;
        };
        id += 1;
        let dur = 1.2 + rng.next() * 3.6;
        let (start_s, end_s) = (t, t + dur);
        let latency_ms = (260.0 + rng.next() * 380.0 + dur * 25.0).round();
        let t_result = end_s + latency_ms / 1000.0;

        if let Some(&m) = markers.peek()
            && m < t_result
        {
            out.push((m, Record::Marker(MarkerRecord { note: None })));
            markers.next();
        }
        if !dropped_done && start_s > 148.0 {
            dropped_done = true;
            out.push((
                r64(start_s - 0.3, 3),
                Record::Dropped(DroppedRecord {
                    samples: 480,
                    total_samples: 480,
                    reason: "ring buffer overrun".into(),
                }),
            ));
        }
        if id == 32 {
            // The scorer fell behind once during the agitated phase; the policy scores
            // the newest utterance and logs the skipped one.
            out.push((
                r64(end_s + 0.05, 3),
                Record::Skipped(SkippedRecord {
                    utterance_id: id,
                    start_s: r64(start_s, 3),
                    end_s: r64(end_s, 3),
                    reason: "scorer behind: newest scored first".into(),
                    total: 1,
                }),
            ));
        } else {
            let logits: Vec<f64> = phase.logits.iter().map(|z| z + 0.9 * rng.sym()).collect();
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exp: Vec<f64> = logits.iter().map(|z| (z - max).exp()).collect();
            let sum: f64 = exp.iter().sum();
            let probs: Vec<f32> = exp.iter().map(|e| round(e / sum, 4)).collect();
            let (f0, range, energy, rate, pause) = phase.prosody;
            let energy_db = energy + 2.0 * rng.sym();
            out.push((
                r64(t_result, 3),
                Record::Utterance(UtteranceRecord {
                    id,
                    start_s: r64(start_s, 3),
                    end_s: r64(end_s, 3),
                    labels: labels.clone(),
                    probs,
                    logits: logits.iter().map(|z| round(z + 14.0, 3)).collect(),
                    method: "first-token".into(),
                    model: MODEL.into(),
                    latency_ms,
                    speech_latency_ms: None,
                    prosody: Some(ProsodyRecord {
                        f0_median_hz: Some(round(f0 + 12.0 * rng.sym(), 1)),
                        f0_range_hz: Some(round(range + 10.0 * rng.sym(), 1)),
                        voiced_fraction: round(0.62 + 0.1 * rng.sym(), 3),
                        energy_db_mean: Some(round(energy_db, 1)),
                        energy_db_var: Some(round(14.0 + 6.0 * rng.sym(), 1)),
                        speaking_rate_syll_s: Some(round(rate + 0.5 * rng.sym(), 2)),
                        pause_ratio: Some(round((pause + 0.05 * rng.sym()).max(0.0), 3)),
                    }),
                    level_db: Some(round(energy_db + 3.0, 1)),
                    speaker: None,
                }),
            ));
            scored += 1;
        }
        t = end_s + 0.6 + rng.next() * 2.6;
    }
    let end_t = r64(t.max(210.0), 3);
    out.push((
        end_t,
        Record::SessionEnd(SessionEnd {
            utterances: scored,
            dropped_samples: 480,
            skipped_utterances: 1,
            reason: "user quit".into(),
        }),
    ));
    // Records are written in session-time order; the stable sort keeps the script's
    // order for equal times.
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn generate() -> Vec<u8> {
    let mut w = SessionLogWriter::new(Vec::new(), "<sample>");
    for (t, r) in records() {
        w.write(t, r).expect("sample records are valid");
    }
    w.into_inner()
}

#[test]
fn sample_log_matches_generator() {
    let generated = generate();
    let path = fixture_path();
    if std::env::var_os("EMOMON_REGEN_FIXTURES").is_some() {
        std::fs::create_dir_all(path.parent().expect("fixture dir")).expect("create fixture dir");
        std::fs::write(&path, &generated).expect("write fixture");
    }
    let committed =
        std::fs::read(&path).expect("tests/fixtures/sessions/sample.jsonl is committed");
    assert!(
        committed == generated,
        "{} differs from the generator; rerun with EMOMON_REGEN_FIXTURES=1 and review",
        path.display()
    );
}

#[test]
fn sample_log_is_a_realistic_mixed_session() {
    let log = session_log::read(&fixture_path()).expect("read sample");
    assert!(log.issues.is_empty(), "{:?}", log.issues);
    let utterances: Vec<&UtteranceRecord> = log
        .entries
        .iter()
        .filter_map(|e| match &e.entry.record {
            Record::Utterance(u) => Some(u),
            _ => None,
        })
        .collect();
    assert!(utterances.len() >= 40, "{} utterances", utterances.len());
    let last = log.entries.last().expect("records");
    assert!(matches!(last.entry.record, Record::SessionEnd(_)));
    assert!(last.entry.t_s >= 180.0, "a few minutes long");
    let mut dominant = std::collections::BTreeSet::new();
    for u in &utterances {
        let sum: f32 = u.probs.iter().sum();
        assert!((sum - 1.0).abs() < 1e-3, "utterance {} sums to {sum}", u.id);
        let top = (0..u.probs.len()).max_by(|&a, &b| u.probs[a].total_cmp(&u.probs[b]));
        dominant.insert(top);
    }
    assert!(
        dominant.len() >= 4,
        "a mixed session: dominant labels {dominant:?}"
    );
    let kinds = |k: fn(&Record) -> bool| log.entries.iter().filter(|e| k(&e.entry.record)).count();
    assert_eq!(kinds(|r| matches!(r, Record::Marker(_))), 2);
    assert_eq!(kinds(|r| matches!(r, Record::Dropped(_))), 1);
    assert_eq!(kinds(|r| matches!(r, Record::Skipped(_))), 1);
    let times: Vec<f64> = log.entries.iter().map(|e| e.entry.t_s).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "records in time order"
    );
}
