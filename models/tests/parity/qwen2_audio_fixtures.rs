//! Qwen2-Audio on burn (flex) vs transformers on a tiny random
//! `Qwen2AudioForConditionalGeneration`, with the Rust log-mel front end.

use crate::common;

use burn::prelude::*;
use common::{Reference, fixture, max_abs_diff};
use emomon_models::mel::{MelConfig, MelExtractor, Padding};
use emomon_models::qwen2::Qwen2Cache;
use emomon_models::qwen2_audio::Qwen2Audio;

#[test]
fn qwen2_audio_logits_match_transformers() {
    let device = Device::flex();
    let whisper_ref = Reference::load();
    let reference = Reference::load_from(&fixture("tiny-qwen2-audio-ref.safetensors"));
    let (config, model) = Qwen2Audio::load(&fixture("tiny-qwen2-audio"), &device).expect("load");
    let mel = MelExtractor::new(MelConfig::whisper(config.audio_config.num_mel_bins)).expect("mel");
    for i in [0usize, 2] {
        let (_, audio) = whisper_ref.f32(&format!("audio.{i}"));
        let m = mel.compute(&audio, Padding::Chunk).expect("mel");
        let valid = audio.len().div_ceil(160); // the processor's feature attention mask
        let feats = Tensor::from_data(TensorData::new(m.data, [1, m.n_mels, m.n_frames]), &device);
        let audio_embeds = model.encode_audio(feats, valid).expect("audio");
        let ids = reference.ids(&format!("input_ids.{i}"));
        let mut cache = Qwen2Cache::default();
        let logits = model
            .forward(&ids, audio_embeds, &mut cache)
            .expect("forward");
        let (shape, want) = reference.f32(&format!("logits.{i}"));
        assert_eq!(logits.dims(), [1, shape[0], shape[1]]);
        let got: Vec<f32> = logits.into_data().try_into_vec().expect("f32");
        let d = max_abs_diff(&got, &want);
        println!("clip {i}: {} tokens, logits max |Δ| = {d:.3e}", ids.len());
        assert!(d <= 1e-3, "clip {i}: {d}");
    }
}
