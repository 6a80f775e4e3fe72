//! Voxtral on burn (flex) vs transformers on a tiny random `VoxtralForConditionalGeneration`.

use crate::common;

use burn::prelude::*;
use common::{Reference, fixture, max_abs_diff};
use emomon_models::mel::{MelConfig, MelExtractor, Padding};
use emomon_models::qwen2::Qwen2Cache;
use emomon_models::voxtral::Voxtral;

#[test]
fn voxtral_logits_match_transformers() {
    let device = Device::flex();
    let whisper_ref = Reference::load();
    let reference = Reference::load_from(&fixture("tiny-voxtral-ref.safetensors"));
    let (config, model) = Voxtral::load(&fixture("tiny-voxtral"), &device).expect("load");
    let mel = MelExtractor::new(MelConfig::whisper(config.audio_config.num_mel_bins)).expect("mel");
    let (_, audio) = whisper_ref.f32("audio.1");
    let m = mel.compute(&audio, Padding::Chunk).expect("mel");
    let feats = Tensor::from_data(TensorData::new(m.data, [1, m.n_mels, m.n_frames]), &device);
    let audio_embeds = model.encode_audio(feats).expect("audio");
    let ids = reference.ids("input_ids.1");
    let mut cache = Qwen2Cache::default();
    let logits = model
        .forward(&ids, audio_embeds, &mut cache)
        .expect("forward");
    let (shape, want) = reference.f32("logits_last.1");
    let t = ids.len();
    let got: Vec<f32> = logits
        .slice(s![0..1, t - shape[0]..t, ..])
        .into_data()
        .try_into_vec()
        .expect("f32");
    let d = max_abs_diff(&got, &want);
    println!(
        "voxtral: {t} tokens, last {} positions' logits max |Δ| = {d:.3e}",
        shape[0]
    );
    assert!(d <= 1e-3, "{d}");
}
