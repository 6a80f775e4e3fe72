//! Verbaliser and `first-token` scorer on the fixture tokenizer and tiny Whisper,
//! vs the reference distributions computed in `scripts/make_fixtures.py`.

use crate::common;

use burn::prelude::*;
use common::{Reference, fixture, max_abs_diff};
use emomon_models::mel::{MelConfig, MelExtractor, Padding};
use emomon_models::scorer::{FirstTokenScorer, Form, ReadoutError, TokenAverageScorer, Verbaliser};
use emomon_models::tokenizer::HfTokenizer;
use emomon_models::whisper::{Whisper, token_tensor};

fn tokenizer() -> HfTokenizer {
    HfTokenizer::from_file(&fixture("tiny-whisper/tokenizer.json")).expect("tokenizer.json")
}

fn meta() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("tiny-whisper-ref.json")).expect("ref json");
    serde_json::from_str(&text).expect("ref json")
}

fn labels(meta: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(meta["scorer"]["labels"].clone()).expect("labels")
}

#[test]
fn verbaliser_matches_reference_first_tokens() {
    let meta = meta();
    let want: Vec<Vec<u32>> =
        serde_json::from_value(meta["scorer"]["first_tokens"].clone()).expect("first tokens");
    let v = Verbaliser::new(
        &labels(&meta),
        &[Form::Space, Form::SpaceCapital],
        &tokenizer(),
    )
    .expect("verbaliser");
    let got: Vec<Vec<u32>> = v
        .label_tokens()
        .iter()
        .map(|l| l.first_tokens.clone())
        .collect();
    // " Neutral" is "Ġ" + "Neutral" in this BPE: the bare-space first token is skipped.
    assert_eq!(got, want);
}

#[test]
fn real_bpe_collision_is_rejected() {
    // Without the leading space, "sad" → "s","ad" and "surprise" → "s","urprise".
    let err = Verbaliser::new(
        &["sad", "surprise"],
        &[Form::Space, Form::Plain],
        &tokenizer(),
    )
    .expect_err("collision");
    assert!(matches!(err, ReadoutError::Collision { .. }), "{err}");
    println!("{err}");
}

#[test]
fn first_token_distribution_matches_reference() {
    let device = Device::flex();
    let reference = Reference::load();
    let meta = meta();
    let temps: Vec<f32> =
        serde_json::from_value(meta["scorer"]["temperatures"].clone()).expect("temps");
    let model = Whisper::load(&fixture("tiny-whisper"), &device).expect("model");
    let verbaliser = Verbaliser::new(
        &labels(&meta),
        &[Form::Space, Form::SpaceCapital],
        &tokenizer(),
    )
    .expect("verbaliser");
    let mel = MelExtractor::new(MelConfig::whisper(80)).expect("mel");
    let prompt = reference.ids("prompt");
    for i in 0..reference.clips() {
        let (_, audio) = reference.f32(&format!("audio.{i}"));
        let m = mel.compute(&audio, Padding::Chunk).expect("mel");
        let feats = Tensor::from_data(TensorData::new(m.data, [1, m.n_mels, m.n_frames]), &device);
        let enc = model.encode(feats).expect("encode");
        let mut cache = model.decoder.start(enc);
        let logits = model
            .decoder
            .forward(token_tensor(&prompt, &device), &mut cache)
            .expect("decode");
        let [_, t, v] = logits.dims();
        let last: Vec<f32> = logits
            .slice(s![0..1, t - 1..t, ..])
            .reshape([v])
            .into_data()
            .try_into_vec()
            .expect("f32");
        for (k, &temp) in temps.iter().enumerate() {
            let scores = FirstTokenScorer::new(verbaliser.clone(), temp)
                .expect("scorer")
                .score(&last)
                .expect("score");
            let (_, want_logits) = reference.f32(&format!("label_logits.{i}"));
            let (_, want_probs) = reference.f32(&format!("label_probs.{i}.t{k}"));
            let dl = max_abs_diff(&scores.logits, &want_logits);
            let dp = max_abs_diff(&scores.probs, &want_probs);
            println!(
                "clip {i} T={temp}: label logits max |Δ| = {dl:.3e}, probs max |Δ| = {dp:.3e}"
            );
            assert!(dl <= 1e-3, "label logits clip {i}: {dl}");
            assert!(dp <= 1e-4, "probs clip {i} T={temp}: {dp}");
            assert!((scores.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn token_average_distribution_matches_reference() {
    let device = Device::flex();
    let reference = Reference::load();
    let meta = meta();
    let model = Whisper::load(&fixture("tiny-whisper"), &device).expect("model");
    let verbaliser = Verbaliser::new(
        &labels(&meta),
        &[Form::Space, Form::SpaceCapital],
        &tokenizer(),
    )
    .expect("verbaliser");
    let scorer = TokenAverageScorer::new(verbaliser);
    let mel = MelExtractor::new(MelConfig::whisper(80)).expect("mel");
    let prompt = reference.ids("prompt");
    for i in 0..reference.clips() {
        let (_, audio) = reference.f32(&format!("audio.{i}"));
        let m = mel.compute(&audio, Padding::Chunk).expect("mel");
        let feats = Tensor::from_data(TensorData::new(m.data, [1, m.n_mels, m.n_frames]), &device);
        let enc = model.encode(feats).expect("encode");
        let steps = reference.ids(&format!("greedy_tokens.{i}")).len();
        let greedy = model.greedy(enc, &prompt, steps, None).expect("greedy");
        let scores = scorer.score(&greedy.logits).expect("score");
        let (_, want_logits) = reference.f32(&format!("token_avg_logits.{i}"));
        let (_, want_probs) = reference.f32(&format!("token_avg_probs.{i}"));
        let dl = max_abs_diff(&scores.logits, &want_logits);
        let dp = max_abs_diff(&scores.probs, &want_probs);
        println!(
            "clip {i}: token-average mean label logits max |Δ| = {dl:.3e}, φ max |Δ| = {dp:.3e}"
        );
        assert!(dl <= 1e-3 && dp <= 1e-4, "clip {i}: {dl} {dp}");
    }
}

#[test]
fn pipeline_scores_batch_like_reference() {
    use emomon_models::whisper_runner::WhisperRunner;
    let device = Device::flex();
    let reference = Reference::load();
    let meta = meta();
    let pipeline = WhisperRunner::load(&fixture("tiny-whisper"), " The speaker sounds", &device)
        .expect("pipeline");
    assert_eq!(pipeline.prompt(), reference.ids("prompt").as_slice());
    let audio: Vec<Vec<f32>> = (0..reference.clips())
        .map(|i| reference.f32(&format!("audio.{i}")).1)
        .collect();
    let refs: Vec<&[f32]> = audio.iter().map(Vec::as_slice).collect();
    let (scores, times) = pipeline
        .score_first_token(&refs, &labels(&meta), 1.0)
        .expect("score");
    println!("{times:?}");
    for (i, s) in scores.iter().enumerate() {
        let (_, want) = reference.f32(&format!("label_probs.{i}.t0"));
        let d = max_abs_diff(&s.probs, &want);
        println!(
            "pipeline clip {i}: probs max |Δ| = {d:.3e}, entropy {:.3}",
            s.entropy
        );
        assert!(d <= 1e-4, "clip {i}: {d}");
    }
}
