//! The default model (Whisper base + the embedded emotion adapter) against the
//! transformers reference recorded by `scripts/default_model/reference.py`, and on the
//! shared clips. Needs the base weights (`emomon setup`) and `../shared/data`; each test
//! skips with a NOTICE when either is missing (CI has both).

use crate::common;

use std::path::Path;

use emomon_models::Device;
use emomon_models::default_model::{self, DefaultModelError};
use emomon_models::emotion_adapter::EmotionWhisper;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    labels: Vec<String>,
    temperature: f32,
    adapter_sha256: String,
    clips: Vec<RefClip>,
}

#[derive(Deserialize)]
struct RefClip {
    path: String,
    label_logits: Vec<f32>,
    probs: Vec<f32>,
    top: String,
}

/// Loads the default model, or prints why the test is skipped.
fn default_model(test: &str) -> Option<EmotionWhisper> {
    match default_model::resolve() {
        Ok(model) => Some(model.load(&Device::flex()).expect("default model loads")),
        Err(e @ DefaultModelError::NotSetUp { .. }) => {
            common::skip(test, e);
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn reference() -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/default-model-ref.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn reference_fixture_belongs_to_the_embedded_adapter() {
    use sha2::Digest;
    let reference = reference();
    let sha = format!(
        "{:x}",
        sha2::Sha256::digest(default_model::ADAPTER_SAFETENSORS)
    );
    assert_eq!(
        sha, reference.adapter_sha256,
        "models/default/adapter.safetensors changed: rerun scripts/default_model/reference.py"
    );
    let adapter = default_model::embedded_adapter().unwrap();
    assert_eq!(adapter.config.labels, reference.labels);
    assert!((adapter.config.temperature - reference.temperature).abs() < 1e-6);
}

/// Label logits and probabilities equal transformers' within 1e-3 on one clip of every
/// (dataset, label) pair, whole clips, and the top label is the same.
#[test]
fn default_model_matches_the_transformers_reference() {
    let Some(data) = common::shared_data("default_model_matches_the_transformers_reference") else {
        return;
    };
    let Some(model) = default_model("default_model_matches_the_transformers_reference") else {
        return;
    };
    let reference = reference();
    assert!(
        reference.clips.len() >= 19,
        "one clip per dataset and label"
    );
    let mut worst = (0f32, 0f32);
    for clip in &reference.clips {
        let audio = common::decode_16k(&data.join(&clip.path));
        let (scores, _) = model.score(&[&audio], None, None).unwrap();
        let s = &scores[0];
        assert_eq!(s.labels, reference.labels);
        for (a, b) in s.logits.iter().zip(&clip.label_logits) {
            worst.0 = worst.0.max((a - b).abs());
            assert!(
                (a - b).abs() <= 1e-3,
                "{}: logits {:?} vs {:?}",
                clip.path,
                s.logits,
                clip.label_logits
            );
        }
        for (a, b) in s.probs.iter().zip(&clip.probs) {
            worst.1 = worst.1.max((a - b).abs());
            assert!(
                (a - b).abs() <= 1e-3,
                "{}: probs {:?} vs {:?}",
                clip.path,
                s.probs,
                clip.probs
            );
        }
        let top = s
            .probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| s.labels[i].clone())
            .unwrap();
        assert_eq!(top, clip.top, "{}", clip.path);
    }
    eprintln!(
        "default model vs transformers on {} clips: max |Δ| logits {:.2e}, probs {:.2e}",
        reference.clips.len(),
        worst.0,
        worst.1
    );
}

/// Every labelled shared clip gets a finite distribution over the nine labels that sums
/// to 1, and a label subset gets the renormalised distribution over just those labels.
/// Set EMOMON_TEST_CLIP_STRIDE=1 to score every clip (`cargo test --release --test
/// default_model`); the default scores every 24th, as the unoptimised test build takes
/// about a second per clip.
#[test]
fn default_model_scores_the_shared_clips() {
    let Some(data) = common::shared_data("default_model_scores_the_shared_clips") else {
        return;
    };
    let Some(model) = default_model("default_model_scores_the_shared_clips") else {
        return;
    };
    let stride: usize = std::env::var("EMOMON_TEST_CLIP_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let manifest = std::fs::read_to_string(data.join("manifest.csv")).unwrap();
    let mut header = manifest.lines().next().unwrap().split(',');
    let path_col = header.position(|c| c == "path").unwrap();
    let paths: Vec<&str> = manifest
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(path_col).unwrap())
        .collect();
    let subset = [
        "angry".to_string(),
        "sad".to_string(),
        "neutral".to_string(),
    ];
    let mut scored = 0;
    for path in paths.iter().step_by(stride.max(1)) {
        let audio = common::decode_16k(&data.join(path));
        let (logits, _) = model.answer_logits(&[&audio]).unwrap();
        let all = model.scores_from_logits(&logits[0], None, None).unwrap();
        let sub = model
            .scores_from_logits(&logits[0], Some(&subset), None)
            .unwrap();
        assert_eq!(all.probs.len(), 9);
        assert!(
            all.probs.iter().all(|p| p.is_finite() && *p >= 0.0),
            "{path}"
        );
        // `score` computes only the label tokens' rows of the output projection; it must
        // read what the full vocabulary row says.
        let (read, _) = model.score(&[&audio], None, None).unwrap();
        for (a, b) in read[0].logits.iter().zip(&all.logits) {
            assert!(
                (a - b).abs() < 1e-4,
                "{path}: label rows {a} vs full row {b}"
            );
        }
        assert!((all.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{path}");
        // The subset's distribution is the full one renormalised over the subset.
        let picked: Vec<f32> = subset
            .iter()
            .map(|l| all.probs[all.labels.iter().position(|x| x == l).unwrap()])
            .collect();
        let total: f32 = picked.iter().sum();
        for (p, q) in sub.probs.iter().zip(&picked) {
            assert!(
                (p - q / total).abs() < 1e-4,
                "{path}: {:?} vs {:?}",
                sub.probs,
                picked
            );
        }
        scored += 1;
    }
    eprintln!("scored {scored} of {} shared clips", paths.len());
    assert!(scored > 0);
}

#[test]
fn missing_base_weights_name_the_setup_command() {
    let dir = tempfile::tempdir().unwrap();
    let err = default_model::resolve_in(&dir.path().join("whisper-base")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("emomon setup") && msg.contains("whisper-base"),
        "{msg}"
    );
}

/// `--adapter DIR` swaps the embedded adapter for one on disk (a cross-validation
/// fold's, say): the shipped directory gives the built-in scores under a name that
/// carries its hash, and a directory without an adapter is named in the error.
#[test]
fn adapter_directory_replaces_the_embedded_adapter() {
    if default_model("adapter_directory_replaces_the_embedded_adapter").is_none() {
        return;
    }
    let input = common::repo().join("tests/fixtures/audio/03.wav");
    let input = input.to_str().unwrap();
    let score = |extra: &[&str]| {
        let mut args = vec!["score", "--whole", "--format", "jsonl", "--input", input];
        args.extend_from_slice(extra);
        common::emomon(&args)
    };
    let record = |out: &std::process::Output| -> serde_json::Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let builtin = record(&score(&[]));
    let shipped = common::repo().join("models/default");
    let on_disk = record(&score(&["--adapter", shipped.to_str().unwrap()]));
    assert_eq!(builtin["probs"], on_disk["probs"]);
    assert_eq!(builtin["labels"], on_disk["labels"]);
    let name = on_disk["model"].as_str().unwrap();
    assert!(
        name.contains("models/default") && name.contains("sha256"),
        "{name}"
    );
    assert_ne!(builtin["model"], on_disk["model"]);

    let empty = tempfile::tempdir().unwrap();
    let out = score(&["--adapter", empty.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("adapter.json"), "{err}");
}
