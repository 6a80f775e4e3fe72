//! The fixture parity checks on burn's wgpu backend (WGSL; lavapipe on machines without
//! a GPU): logits within 1e-3 of transformers, the same greedy tokens, and the same
//! label distributions through the generic API. Built only with `--features wgpu`.

#![cfg(feature = "wgpu")]

mod common;

use burn::prelude::*;
use common::{Reference, fixture, max_abs_diff};
use emomon_models::alm::{AlmOptions, AlmScorer, EmotionModel};
use emomon_models::device::{DeviceKind, open_device};
use emomon_models::mel::{MelConfig, MelExtractor, Padding};
use emomon_models::qwen2::Qwen2Cache;
use emomon_models::qwen2_audio::Qwen2Audio;
use emomon_models::scorer::{FirstTokenScorer, Method};
use emomon_models::voxtral::Voxtral;
use emomon_models::whisper::{Whisper, token_tensor};

const TOL: f32 = 1e-3;

fn wgpu() -> Device {
    open_device(DeviceKind::Wgpu).expect("wgpu device")
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 data")
}

fn features(audio: &[f32], device: &Device) -> (Tensor<3>, usize) {
    let m = MelExtractor::new(MelConfig::whisper(80))
        .expect("mel")
        .compute(audio, Padding::Chunk)
        .expect("mel");
    (
        Tensor::from_data(TensorData::new(m.data, [1, m.n_mels, m.n_frames]), device),
        audio.len().div_ceil(160),
    )
}

#[test]
fn whisper_logits_and_greedy_tokens_on_wgpu() {
    let device = wgpu();
    let reference = Reference::load();
    let model = Whisper::load(&fixture("tiny-whisper"), &device).expect("load");
    let prompt = reference.ids("prompt");
    for i in 0..reference.clips() {
        let (_, audio) = reference.f32(&format!("audio.{i}"));
        let enc = model.encode(features(&audio, &device).0).expect("encode");
        let mut cache = model.decoder.start(enc.clone());
        let logits = model
            .decoder
            .forward(token_tensor(&prompt, &device), &mut cache)
            .expect("decoder");
        let (_, want) = reference.f32(&format!("prompt_logits.{i}"));
        let d = max_abs_diff(&to_vec(logits), &want);
        let want_tokens = reference.ids(&format!("greedy_tokens.{i}"));
        let greedy = model
            .greedy(enc, &prompt, want_tokens.len(), None)
            .expect("greedy");
        println!("wgpu whisper clip {i}: prompt logits max |Δ| = {d:.3e}");
        assert!(d <= TOL, "clip {i}: {d}");
        assert_eq!(greedy.tokens, want_tokens, "clip {i}");
    }
}

#[test]
fn whisper_first_token_distribution_on_wgpu() {
    let reference = Reference::load();
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tiny-whisper-ref.json")).expect("meta"),
    )
    .expect("json");
    let options = AlmOptions {
        labels: serde_json::from_value(meta["scorer"]["labels"].clone()).expect("labels"),
        ..AlmOptions::default()
    };
    let scorer = AlmScorer::open(
        fixture("tiny-whisper").to_str().expect("utf-8"),
        options,
        &wgpu(),
    )
    .expect("open");
    let audio: Vec<Vec<f32>> = (0..reference.clips())
        .map(|i| reference.f32(&format!("audio.{i}")).1)
        .collect();
    let refs: Vec<&[f32]> = audio.iter().map(Vec::as_slice).collect();
    let batch = scorer.score(&refs).expect("score");
    for (i, u) in batch.utterances.iter().enumerate() {
        let s = u.scores.as_ref().expect("scores");
        let (_, want) = reference.f32(&format!("label_probs.{i}.t0"));
        let d = max_abs_diff(&s.probs, &want);
        println!("wgpu whisper clip {i}: first-token probs max |Δ| = {d:.3e}");
        assert!(d <= 1e-4, "clip {i}: {d}");
    }
}

#[test]
fn qwen2_audio_logits_and_generation_on_wgpu() {
    let device = wgpu();
    let whisper_ref = Reference::load();
    let reference = Reference::load_from(&fixture("tiny-qwen2-audio-ref.safetensors"));
    let (_, model) = Qwen2Audio::load(&fixture("tiny-qwen2-audio"), &device).expect("load");
    for i in [0usize, 2] {
        let (_, audio) = whisper_ref.f32(&format!("audio.{i}"));
        let (feats, valid) = features(&audio, &device);
        let audio_embeds = model.encode_audio(feats, valid).expect("audio");
        let ids = reference.ids(&format!("input_ids.{i}"));
        let logits = model
            .forward(&ids, audio_embeds, &mut Qwen2Cache::default())
            .expect("forward");
        let (_, want) = reference.f32(&format!("logits.{i}"));
        let d = max_abs_diff(&to_vec(logits), &want);
        println!("wgpu qwen2-audio clip {i}: logits max |Δ| = {d:.3e}");
        assert!(d <= TOL, "clip {i}: {d}");
    }

    // Generation through the generic API with the real chat template.
    let chat_ref = Reference::load_from(&fixture("tiny-qwen2-audio-chat-ref.safetensors"));
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tiny-qwen2-audio-chat-ref.json")).expect("meta"),
    )
    .expect("json");
    let options = AlmOptions {
        method: Method::TokenAverage,
        labels: serde_json::from_value(meta["labels"].clone()).expect("labels"),
        prompt: meta["question"].as_str().map(String::from),
        max_new_tokens: meta["greedy_steps"].as_u64().expect("steps") as usize,
        ..AlmOptions::default()
    };
    let scorer = AlmScorer::open(
        fixture("tiny-qwen2-audio").to_str().expect("utf-8"),
        options,
        &device,
    )
    .expect("open");
    for i in [0usize, 2] {
        let (_, audio) = whisper_ref.f32(&format!("audio.{i}"));
        let got = scorer.score(&[&audio]).expect("score");
        let tokens = &got.utterances[0].generated.as_ref().expect("generated").0;
        assert_eq!(
            tokens,
            &chat_ref.ids(&format!("greedy_tokens.{i}")),
            "clip {i}"
        );
    }
}

#[test]
fn voxtral_logits_on_wgpu() {
    let device = wgpu();
    let whisper_ref = Reference::load();
    let reference = Reference::load_from(&fixture("tiny-voxtral-ref.safetensors"));
    let (_, model) = Voxtral::load(&fixture("tiny-voxtral"), &device).expect("load");
    let (_, audio) = whisper_ref.f32("audio.1");
    let audio_embeds = model
        .encode_audio(features(&audio, &device).0)
        .expect("audio");
    let ids = reference.ids("input_ids.1");
    let logits = model
        .forward(&ids, audio_embeds, &mut Qwen2Cache::default())
        .expect("forward");
    let (shape, want) = reference.f32("logits_last.1");
    let t = ids.len();
    let got = to_vec(logits.slice(s![0..1, t - shape[0]..t, ..]));
    let d = max_abs_diff(&got, &want);
    println!(
        "wgpu voxtral: last {} positions' logits max |Δ| = {d:.3e}",
        shape[0]
    );
    assert!(d <= TOL, "{d}");
    // The label readout of the last position is the CPU one's.
    let last = &got[(shape[0] - 1) * shape[1]..];
    let tok =
        emomon_models::tokenizer::HfTokenizer::from_file(&fixture("tiny-voxtral/tokenizer.json"))
            .expect("tokenizer");
    let v = emomon_models::scorer::Verbaliser::new(
        &["neutral", "happy", "calm"],
        &[emomon_models::scorer::Form::Plain],
        &tok,
    )
    .expect("verbaliser");
    let s = FirstTokenScorer::new(v, 1.0).expect("scorer");
    let want_last = &want[(shape[0] - 1) * shape[1]..];
    let dp = max_abs_diff(
        &s.score(last).expect("score").probs,
        &s.score(want_last).expect("score").probs,
    );
    assert!(dp <= 1e-4, "{dp}");
}

/// The GE2E speaker encoder on wgpu (the burn LSTM path; flex runs emomon's own recurrence
/// kernel) equals flex on real clips of the shared data: every partial window's embedding
/// within 1e-5 per value (lavapipe: 2.1e-6) and the utterance embeddings at cosine
/// ≥ 0.9999, and both match resemblyzer's own embedding (`fixtures/speaker-encoder-ref.json`)
/// at cosine ≥ 0.9999.
/// Needs the set-up weights and `../shared/data`; skips with a notice otherwise.
#[test]
fn speaker_encoder_on_wgpu_equals_flex() {
    use emomon_models::speaker::{SpeakerEncoder, WEIGHTS_FILE, cosine, default_dir};
    const PARTIAL_TOL: f32 = 1e-5;
    const MIN_COSINE: f32 = 0.9999;
    let dir = std::env::var_os("EMOMON_SPEAKER_ENCODER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(default_dir);
    if !dir.join(WEIGHTS_FILE).is_file() && !dir.is_file() {
        let why = format!(
            "no {WEIGHTS_FILE} in {} (run `emomon setup`)",
            dir.display()
        );
        return common::skip("speaker_encoder_on_wgpu_equals_flex", why);
    }
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if !data.join("manifest.csv").is_file() {
        let why = format!("{} not found", data.display());
        return common::skip("speaker_encoder_on_wgpu_equals_flex", why);
    }
    #[derive(serde::Deserialize)]
    struct Clip {
        file: String,
        samples: usize,
        embedding: Vec<f32>,
    }
    #[derive(serde::Deserialize)]
    struct Reference {
        clips: Vec<Clip>,
    }
    let text = std::fs::read_to_string(fixture("speaker-encoder-ref.json")).expect("reference");
    let reference: Reference = serde_json::from_str(&text).expect("reference format");
    let flex = SpeakerEncoder::load(&dir, &Device::flex()).expect("load on flex");
    let gpu = SpeakerEncoder::load(&dir, &wgpu()).expect("load on wgpu");
    assert!(reference.clips.len() >= 4);
    for clip in &reference.clips {
        let path = data.join(&clip.file);
        let mut reader =
            hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let wav: Vec<f32> = reader
            .samples::<i16>()
            .take(clip.samples)
            .map(|s| f32::from(s.expect("sample")) / 32768.0)
            .collect();
        let (want, got) = (
            flex.embed_partials(&wav).expect("flex"),
            gpu.embed_partials(&wav).expect("wgpu"),
        );
        assert_eq!(want.len(), got.len(), "{}: partial windows", clip.file);
        let d = want
            .iter()
            .zip(&got)
            .map(|(a, b)| max_abs_diff(a, b))
            .fold(0.0f32, f32::max);
        let (e_flex, e_gpu) = (flex.embed(&wav).unwrap(), gpu.embed(&wav).unwrap());
        let (c, c_ref) = (cosine(&e_flex, &e_gpu), cosine(&e_gpu, &clip.embedding));
        println!(
            "wgpu speaker {}: {} partials, max |Δ| {d:.2e}, cosine to flex {c:.7}, to resemblyzer {c_ref:.7}",
            clip.file,
            got.len()
        );
        assert!(d <= PARTIAL_TOL, "{}: partials differ by {d}", clip.file);
        assert!(
            c >= MIN_COSINE && c_ref >= MIN_COSINE,
            "{}: {c} / {c_ref}",
            clip.file
        );
    }
}
