//! `--quant q8` (int8 kernels) against f32 on real Whisper base and real emotional
//! speech: label logits within 0.25 and the same top label on every clip tested.
//!
//! Needs `EMOMON_WHISPER_BASE` (the directory `scripts/setup` converts) and
//! `../shared/data`; skips with a NOTICE otherwise. The clips are a fixed spread over
//! the manifest's datasets (`EMOMON_Q8_CLIPS`, default 12, sets how many: a debug
//! build scores a clip in about a second per mode).

mod common;

use std::path::Path;

use emomon_models::Device;
use emomon_models::alm::{AlmOptions, AlmScorer};
use emomon_models::scorer::LabelScores;

/// Stated bound on the label-logit change (max |Δ| over labels).
const LOGIT_TOL: f32 = 0.25;

fn open(dir: &str, quantize: bool) -> AlmScorer {
    let options = AlmOptions {
        quantize,
        pad_whisper: false,
        ..AlmOptions::default()
    };
    AlmScorer::open(dir, options, &Device::flex()).expect("open Whisper base")
}

fn score(model: &AlmScorer, audio: &[f32]) -> LabelScores {
    let mut batch = model.score(&[audio]).expect("score");
    batch.utterances.remove(0).scores.expect("scores")
}

fn top(s: &LabelScores) -> usize {
    (0..s.probs.len())
        .max_by(|&a, &b| s.probs[a].total_cmp(&s.probs[b]))
        .expect("labels")
}

/// `n` clip paths spread evenly over the manifest (every dataset appears in order).
fn spread(data: &Path, n: usize) -> Vec<std::path::PathBuf> {
    let manifest = std::fs::read_to_string(data.join("manifest.csv")).expect("manifest");
    let paths: Vec<&str> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|p| p.ends_with(".wav"))
        .collect();
    let step = (paths.len() / n.max(1)).max(1);
    paths
        .iter()
        .step_by(step)
        .take(n)
        .map(|p| data.join(p))
        .collect()
}

#[test]
fn q8_keeps_label_logits_and_top_labels_on_shared_clips() {
    let Some(dir) = std::env::var_os("EMOMON_WHISPER_BASE") else {
        eprintln!("NOTICE: q8 accuracy skipped: EMOMON_WHISPER_BASE is not set");
        return;
    };
    let Some(data) = common::shared_data("q8 accuracy") else {
        return;
    };
    let n = std::env::var("EMOMON_Q8_CLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = dir.to_str().expect("utf-8 path");
    let (f32_model, q8_model) = (open(dir, false), open(dir, true));
    let mut worst = 0.0f32;
    for path in spread(&data, n) {
        let audio = common::decode_16k(&path);
        let (a, b) = (score(&f32_model, &audio), score(&q8_model, &audio));
        let d = a
            .logits
            .iter()
            .zip(&b.logits)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        println!(
            "{}: label logits max |Δ| {d:.3}, top {} / {}",
            path.display(),
            a.labels[top(&a)],
            b.labels[top(&b)]
        );
        worst = worst.max(d);
        assert_eq!(top(&a), top(&b), "{}: top label changed", path.display());
        assert!(d <= LOGIT_TOL, "{}: {d} > {LOGIT_TOL}", path.display());
    }
    println!("worst label-logit change over {n} clips: {worst:.3}");
}
