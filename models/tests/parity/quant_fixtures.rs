//! `q8` weights vs f32 on the same inputs: same top label, label logits within a stated
//! tolerance, on the tiny fixtures and (when `EMOMON_WHISPER_BASE` points at the
//! converted directory) on real Whisper base.
//!
//! Stated tolerances against f32 (max |Δ|): label logits 0.15 on the tiny random
//! models (their weights are drawn wide, so logits are large) and 0.25 on Whisper base
//! (issue 15's guard); probabilities 0.01 on the tiny models and 0.015 on Whisper base
//! (measured at most 0.0113 on these clips, 0.0098 before the encoder ran on host
//! buffers). Which int8 rounding
//! an activation falls on depends on the order of f32 additions before it, so any change
//! of that order (e.g. the encoder on host buffers) moves these numbers by a few 1e-3
//! either way; `scripts/q8_agreement.py` on 122 shared clips is the wider check. 8-bit groups of 32 bound each value's rounding error
//! by half a step, 0.4 % of its group's largest magnitude. On the CPU the Whisper
//! family's q8 is the grouped int8 kernel on the encoder (weights and activations per
//! 32 inputs, decoder in f32); the chat models use burn's 8-bit weight blocks.

use crate::common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::{Reference, fixture, max_abs_diff};
use emomon_models::alm::{AlmOptions, AlmScorer, EmotionModel};
use emomon_models::quant::quantize_linears;
use emomon_models::scorer::LabelScores;
use emomon_models::whisper::Whisper;

fn scores(dir: &str, options: &AlmOptions, quantize: bool, audio: &[&[f32]]) -> Vec<LabelScores> {
    let options = AlmOptions {
        quantize,
        ..options.clone()
    };
    let scorer = AlmScorer::open(dir, options, &Device::flex()).expect("open");
    scorer
        .score(audio)
        .expect("score")
        .utterances
        .into_iter()
        .map(|u| u.scores.expect("scores"))
        .collect()
}

/// Reference clips `ids` (16 kHz samples).
fn clips(ids: &[usize]) -> Vec<Vec<f32>> {
    let reference = Reference::load();
    ids.iter()
        .map(|i| reference.f32(&format!("audio.{i}")).1)
        .collect()
}

fn top(s: &LabelScores) -> usize {
    (0..s.probs.len())
        .max_by(|&a, &b| s.probs[a].total_cmp(&s.probs[b]))
        .expect("labels")
}

fn compare(name: &str, dir: &str, options: AlmOptions, audio: &[&[f32]], tol: f32, prob_tol: f32) {
    let f32s = scores(dir, &options, false, audio);
    let q8s = scores(dir, &options, true, audio);
    // Every clip is reported before any assertion, so a failure shows the whole picture.
    let mut failures = Vec::new();
    for (i, (a, b)) in f32s.iter().zip(&q8s).enumerate() {
        let d = max_abs_diff(&a.logits, &b.logits);
        let dp = max_abs_diff(&a.probs, &b.probs);
        println!(
            "{name} clip {i}: q8 vs f32 label logits max |Δ| = {d:.3e}, probs max |Δ| = {dp:.3e}, top {} / {}",
            a.labels[top(a)],
            b.labels[top(b)]
        );
        if top(a) != top(b) {
            failures.push(format!("clip {i}: top label changed"));
        }
        if d > tol {
            failures.push(format!("clip {i}: logits {d} > {tol}"));
        }
        if dp > prob_tol {
            failures.push(format!("clip {i}: probs {dp} > {prob_tol}"));
        }
    }
    assert!(failures.is_empty(), "{name}: {}", failures.join("; "));
}

#[test]
fn whisper_linear_weights_are_quantized() {
    let device = Device::flex();
    let model = Whisper::load(&fixture("tiny-whisper"), &device).expect("load");
    let (_, n) = quantize_linears(model.encoder.clone(), &device);
    // 2 layers × (q, k, v, out, fc1, fc2).
    assert_eq!(n, 12);
}

#[test]
fn q8_tiny_whisper_keeps_top_labels() {
    let audio = clips(&[0, 1, 2]);
    let refs: Vec<&[f32]> = audio.iter().map(Vec::as_slice).collect();
    compare(
        "tiny-whisper",
        fixture("tiny-whisper").to_str().expect("utf-8"),
        AlmOptions::default(),
        &refs,
        0.15,
        0.01,
    );
}

#[test]
fn q8_tiny_qwen2_audio_keeps_top_labels() {
    let audio = clips(&[0, 2]);
    let refs: Vec<&[f32]> = audio.iter().map(Vec::as_slice).collect();
    let options = AlmOptions {
        labels: [
            "neutral", "happy", "sad", "angry", "fear", "disgust", "calm",
        ]
        .map(String::from)
        .to_vec(),
        ..AlmOptions::default()
    };
    compare(
        "tiny-qwen2-audio",
        fixture("tiny-qwen2-audio").to_str().expect("utf-8"),
        options,
        &refs,
        0.15,
        0.01,
    );
}

#[test]
fn q8_whisper_base_keeps_top_labels() {
    let Some(dir) = std::env::var_os("EMOMON_WHISPER_BASE") else {
        common::skip(
            "q8_whisper_base_keeps_top_labels",
            "EMOMON_WHISPER_BASE is not set",
        );
        return;
    };
    let audio = clips(&[0, 1, 2]);
    let refs: Vec<&[f32]> = audio.iter().map(Vec::as_slice).collect();
    compare(
        "whisper-base",
        dir.to_str().expect("utf-8"),
        AlmOptions::default(),
        &refs,
        0.25,
        0.015,
    );
}

/// `../shared/data`, or a skip notice.
fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if dir.join("manifest.csv").is_file() {
        Some(dir)
    } else {
        common::skip(test, format_args!("{} not found", dir.display()));
        None
    }
}

/// A 16 kHz 16-bit mono WAV as samples scaled by 1/32768.
fn read_wav(path: &Path) -> Vec<f32> {
    let mut reader =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(reader.spec().sample_rate, 16_000, "{}", path.display());
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect()
}

/// Whisper base's q8 (int8 encoder) against f32 on shared clips in two languages:
/// the first URDU clip (the one that moved by 0.46 under per-channel × per-token
/// int8) and a spread of URDU and EmoDB clips.
#[test]
fn q8_whisper_base_keeps_top_labels_on_shared_clips() {
    const TEST: &str = "q8_whisper_base_keeps_top_labels_on_shared_clips";
    let Some(dir) = std::env::var_os("EMOMON_WHISPER_BASE") else {
        common::skip(TEST, "EMOMON_WHISPER_BASE is not set");
        return;
    };
    let Some(data) = shared_data(TEST) else {
        return;
    };
    let manifest = std::fs::read_to_string(data.join("manifest.csv")).expect("manifest");
    let paths: Vec<&str> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|p| p.starts_with("urdu/") || p.starts_with("emodb/"))
        .collect();
    let picked = [0, 137, 401, 733].map(|i| paths[i % paths.len()]);
    let audio: Vec<Vec<f32>> = picked.iter().map(|p| read_wav(&data.join(p))).collect();
    let refs: Vec<&[f32]> = audio.iter().map(Vec::as_slice).collect();
    println!("clips: {picked:?}");
    compare(
        "whisper-base (shared)",
        dir.to_str().expect("utf-8"),
        AlmOptions::default(),
        &refs,
        0.25,
        0.015,
    );
}

/// Deterministic log-mel-like features `[1, n_mels, frames]` (a few slow ripples).
fn ripple_features(n_mels: usize, frames: usize, device: &Device) -> Tensor<3> {
    let values: Vec<f32> = (0..n_mels * frames)
        .map(|i| {
            let (m, t) = ((i / frames) as f32, (i % frames) as f32);
            (0.37 * m + 0.11 * t).sin() * 0.8 + (0.05 * t * (1.0 + m / 40.0)).cos() * 0.3
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [1, n_mels, frames]), device)
}

/// `--quant q8` loads each encoder layer straight to int8 (never the whole f32 encoder,
/// for the peak memory); that must be the very model f32-load-then-quantise gives: the
/// same int8 weights, so bit-for-bit the same logits. (And those differ from f32's, so
/// the comparison sees the int8 path.)
#[test]
fn q8_loaded_straight_to_int8_equals_quantised_after_load() {
    let device = Device::flex();
    let dir = fixture("tiny-whisper");
    let f32_model = Whisper::load(&dir, &device).expect("load f32");
    let mut after = Whisper::load(&dir, &device).expect("load f32");
    assert_eq!(after.quantize_q8(), 12, "2 layers × 6 encoder matrices");
    let straight = Whisper::load_with(&dir, &device, true).expect("load q8");
    assert_eq!(straight.encoder.q8_matrices(), 12);
    assert_eq!(f32_model.encoder.q8_matrices(), 0);
    let prompt = [401u32, 7, 42];
    let logits = |model: &Whisper| {
        let features = ripple_features(model.config.num_mel_bins, 300, &device);
        let states = model.encode(features).expect("encode");
        model.answer_logits(states, &prompt).expect("logits")
    };
    let (reference, a, b) = (logits(&f32_model), logits(&after), logits(&straight));
    assert_eq!(
        a, b,
        "straight-to-int8 load differs from load-then-quantise"
    );
    let moved = max_abs_diff(&reference[0], &a[0]);
    println!("tiny-whisper q8 vs f32 vocabulary logits max |Δ| = {moved:.3e}");
    assert!(moved > 0.0, "the q8 model computed f32 logits");
}
