//! Helpers for the `emomon run` tests: session audio built from real clips with
//! known speech spans, a scorer whose speed and failures the test controls, and
//! the binary under test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use emomon::scoring::{ScoreError, Scorer, Scores};
use emomon::utterance::Utterance;

pub use crate::common::*;

/// Audio made of clips separated by quiet gaps, and where each clip is.
pub struct SessionAudio {
    pub samples: Vec<f32>,
    /// (start_s, end_s) of each clip's speech (by an energy reference).
    pub spans: Vec<(f64, f64)>,
    /// (start_s, end_s) of each clip's whole audio, room noise included.
    pub clips: Vec<(f64, f64)>,
}

/// Concatenates `clips` (decoded to 16 kHz) with `gap_s` of -90 dBFS noise before
/// each and after the last.
pub fn session_audio(clips: &[PathBuf], gap_s: f64) -> SessionAudio {
    let gap = (gap_s * 16_000.0) as usize;
    let mut noise = Noise::new(7);
    let mut samples = noise.samples(gap, -90.0);
    let mut spans = Vec::new();
    let mut extents = Vec::new();
    for clip in clips {
        let audio = decode_16k(clip);
        let (s, e) = speech_extent(&audio, 35.0, -55.0);
        let offset = samples.len() as f64 / 16_000.0;
        spans.push((offset + s, offset + e));
        extents.push((offset, offset + audio.len() as f64 / 16_000.0));
        samples.extend(&audio);
        samples.extend(noise.samples(gap, -90.0));
    }
    SessionAudio {
        samples,
        spans,
        clips: extents,
    }
}

/// The repository's own speech clips (always present).
pub fn fixture_clips() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    ["03.wav", "07.wav", "12.wav"]
        .iter()
        .map(|c| dir.join(c))
        .collect()
}

/// The tiny random-weight Whisper fixture (a real model directory).
pub fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures/tiny-whisper")
}

/// The `emomon` binary.
pub fn emomon() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_emomon"))
}

/// `emomon run --headless` on `wav` with the tiny model, logging to `log`, plus `extra`.
pub fn headless_run(wav: &Path, log: &Path, extra: &[&str]) -> std::process::Command {
    let mut command = emomon();
    command
        .args(["run", "--headless", "--input"])
        .arg(wav)
        .arg("--model")
        .arg(tiny_model())
        .arg("--session-log")
        .arg(log)
        .args(extra);
    command
}

/// A scorer that takes `delay` per batch, answers a fixed distribution that
/// depends on the utterance id, and panics on `panic_on`.
pub struct TestScorer {
    pub labels: Vec<String>,
    pub delay: Duration,
    pub panic_on: Option<u64>,
}

impl TestScorer {
    pub fn new(delay_ms: u64) -> Self {
        Self {
            labels: vec!["neutral".into(), "happy".into(), "sad".into()],
            delay: Duration::from_millis(delay_ms),
            panic_on: None,
        }
    }
}

impl Scorer for TestScorer {
    fn model(&self) -> &str {
        "test-scorer"
    }
    fn method(&self) -> &str {
        "fixed"
    }
    fn device(&self) -> &str {
        "cpu"
    }
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn score(&mut self, batch: &[Arc<Utterance>]) -> Result<Vec<Scores>, ScoreError> {
        std::thread::sleep(self.delay);
        Ok(batch
            .iter()
            .map(|u| {
                if Some(u.id) == self.panic_on {
                    panic!("test scorer breaks on utterance {}", u.id);
                }
                let mut probs = vec![0.2, 0.2, 0.2];
                probs[(u.id % 3) as usize] = 0.6;
                Scores {
                    logits: probs.iter().map(|p: &f32| p.ln()).collect(),
                    probs,
                }
            })
            .collect())
    }
}
