//! The generic model API ([`AlmScorer`]) end to end on the tiny fixtures: directory in,
//! audio in, distribution out, vs transformers (references from
//! `scripts/make_fixtures.py` and `scripts/make_chat_fixtures.py`).
//!
//! Tolerances: label logits ≤ 1e-3 (as for model logits), distributions ≤ 1e-4 given
//! the reference logits, identical prompt ids and greedy tokens.

use crate::common;

use burn::prelude::*;
use common::{Reference, fixture, max_abs_diff};
use emomon_models::alm::{AlmError, AlmOptions, AlmScorer, Architecture, EmotionModel};
use emomon_models::scorer::{FirstTokenScorer, Method, TokenAverageScorer};

fn path(rel: &str) -> String {
    fixture(rel).to_str().expect("utf-8 path").to_string()
}

fn whisper_meta() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("tiny-whisper-ref.json")).expect("ref json");
    serde_json::from_str(&text).expect("ref json")
}

fn chat_meta() -> serde_json::Value {
    let text =
        std::fs::read_to_string(fixture("tiny-qwen2-audio-chat-ref.json")).expect("ref json");
    serde_json::from_str(&text).expect("ref json")
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(v.clone()).expect("strings")
}

#[test]
fn whisper_first_token_batch_matches_reference() {
    let reference = Reference::load();
    let meta = whisper_meta();
    let labels = strings(&meta["scorer"]["labels"]);
    let temps: Vec<f32> =
        serde_json::from_value(meta["scorer"]["temperatures"].clone()).expect("t");
    let audio: Vec<Vec<f32>> = (0..reference.clips())
        .map(|i| reference.f32(&format!("audio.{i}")).1)
        .collect();
    let refs: Vec<&[f32]> = audio.iter().map(Vec::as_slice).collect();
    for (k, &temperature) in temps.iter().enumerate() {
        let options = AlmOptions {
            labels: labels.clone(),
            temperature,
            ..AlmOptions::default()
        };
        let scorer =
            AlmScorer::open(&path("tiny-whisper"), options, &Device::flex()).expect("open");
        assert_eq!(scorer.architecture(), Architecture::Whisper);
        assert_eq!(
            scorer.input_ids(16000).expect("ids"),
            reference.ids("prompt")
        );
        let batch = scorer.score(&refs).expect("score");
        assert_eq!(batch.utterances.len(), refs.len());
        for (i, u) in batch.utterances.iter().enumerate() {
            let s = u.scores.as_ref().expect("scores");
            let (_, want_logits) = reference.f32(&format!("label_logits.{i}"));
            let (_, want) = reference.f32(&format!("label_probs.{i}.t{k}"));
            let dl = max_abs_diff(&s.logits, &want_logits);
            let dp = max_abs_diff(&s.probs, &want);
            println!("whisper clip {i} T={temperature}: logits |Δ| {dl:.2e}, probs |Δ| {dp:.2e}");
            assert!(dl <= 1e-3 && dp <= 1e-4, "clip {i}: {dl} {dp}");
            assert_eq!(s.method, Method::FirstToken);
            assert_eq!(s.labels, labels);
        }
        assert!(batch.times.encoder > std::time::Duration::ZERO);
        assert!(batch.total >= batch.times.encoder);
    }
}

#[test]
fn whisper_token_average_matches_reference() {
    let reference = Reference::load();
    let meta = whisper_meta();
    let steps = meta["greedy_steps"].as_u64().expect("steps") as usize;
    let options = AlmOptions {
        method: Method::TokenAverage,
        labels: strings(&meta["scorer"]["labels"]),
        max_new_tokens: steps,
        ..AlmOptions::default()
    };
    let scorer = AlmScorer::open(&path("tiny-whisper"), options, &Device::flex()).expect("open");
    for i in 0..reference.clips() {
        let (_, audio) = reference.f32(&format!("audio.{i}"));
        let batch = scorer.score(&[&audio]).expect("score");
        let u = &batch.utterances[0];
        let (tokens, _) = u.generated.as_ref().expect("generated");
        assert_eq!(tokens, &reference.ids(&format!("greedy_tokens.{i}")));
        let s = u.scores.as_ref().expect("scores");
        let (_, want) = reference.f32(&format!("token_avg_probs.{i}"));
        let d = max_abs_diff(&s.probs, &want);
        println!("whisper clip {i}: token-average φ |Δ| {d:.2e}");
        assert!(d <= 1e-4, "clip {i}: {d}");
    }
}

/// Qwen2-Audio with its real chat template, as transformers' processor + model run it.
fn qwen2_audio(method: Method, max_new_tokens: usize) -> AlmScorer {
    let meta = chat_meta();
    let options = AlmOptions {
        method,
        labels: strings(&meta["labels"]),
        prompt: Some(meta["question"].as_str().expect("question").to_string()),
        max_new_tokens,
        ..AlmOptions::default()
    };
    AlmScorer::open(&path("tiny-qwen2-audio"), options, &Device::flex()).expect("open")
}

#[test]
fn qwen2_audio_prompt_and_first_token_match_transformers() {
    let whisper_ref = Reference::load();
    let reference = Reference::load_from(&fixture("tiny-qwen2-audio-chat-ref.safetensors"));
    let meta = chat_meta();
    let scorer = qwen2_audio(Method::FirstToken, 16);
    assert_eq!(scorer.architecture(), Architecture::Qwen2Audio);
    assert_eq!(
        scorer.prompt_text(),
        Some(meta["prompt_text"].as_str().expect("text"))
    );
    for i in [0usize, 2] {
        let (_, audio) = whisper_ref.f32(&format!("audio.{i}"));
        assert_eq!(
            scorer.input_ids(audio.len()).expect("ids"),
            reference.ids(&format!("input_ids.{i}")),
            "clip {i}: input ids"
        );
        let got = scorer.score(&[&audio]).expect("score");
        let s = got.utterances[0].scores.as_ref().expect("scores");
        let (_, logits) = reference.f32(&format!("answer_logits.{i}"));
        let want = FirstTokenScorer::new(scorer.verbaliser().clone(), 1.0)
            .expect("scorer")
            .score(&logits)
            .expect("reference scores");
        let dl = max_abs_diff(&s.logits, &want.logits);
        let dp = max_abs_diff(&s.probs, &want.probs);
        println!("qwen2-audio clip {i}: label logits |Δ| {dl:.2e}, probs |Δ| {dp:.2e}");
        assert!(dl <= 1e-3 && dp <= 1e-4, "clip {i}: {dl} {dp}");
    }
}

#[test]
fn qwen2_audio_token_average_follows_transformers_generate() {
    let whisper_ref = Reference::load();
    let reference = Reference::load_from(&fixture("tiny-qwen2-audio-chat-ref.safetensors"));
    let steps = chat_meta()["greedy_steps"].as_u64().expect("steps") as usize;
    let scorer = qwen2_audio(Method::TokenAverage, steps);
    for i in [0usize, 2] {
        let (_, audio) = whisper_ref.f32(&format!("audio.{i}"));
        let got = scorer.score(&[&audio]).expect("score");
        let u = &got.utterances[0];
        let want_tokens = reference.ids(&format!("greedy_tokens.{i}"));
        assert_eq!(&u.generated.as_ref().expect("generated").0, &want_tokens);
        let (shape, flat) = reference.f32(&format!("greedy_logits.{i}"));
        let steps: Vec<Vec<f32>> = flat.chunks(shape[1]).map(<[f32]>::to_vec).collect();
        let want = TokenAverageScorer::new(scorer.verbaliser().clone())
            .score(&steps)
            .expect("reference");
        let s = u.scores.as_ref().expect("scores");
        let d = max_abs_diff(&s.probs, &want.probs);
        println!("qwen2-audio clip {i}: tokens {want_tokens:?}, token-average φ |Δ| {d:.2e}");
        assert!(d <= 1e-4, "clip {i}: {d}");
    }
}

#[test]
fn text_method_reports_unparseable_answers() {
    // A random model writes no "label NN%" pairs: the result says so and keeps the text.
    let whisper_ref = Reference::load();
    let scorer = qwen2_audio(Method::Text, 6);
    let (_, audio) = whisper_ref.f32("audio.0");
    let got = scorer.score(&[&audio]).expect("score");
    let u = &got.utterances[0];
    let (_, text) = u.generated.as_ref().expect("generated");
    let err = u
        .scores
        .as_ref()
        .expect_err("random output is not a distribution");
    println!("text answer {text:?}: {err}");
}

#[test]
fn voxtral_prompt_and_first_token_match_transformers() {
    let whisper_ref = Reference::load();
    let reference = Reference::load_from(&fixture("tiny-voxtral-ref.safetensors"));
    let options = AlmOptions {
        labels: strings(&chat_meta()["labels"]),
        prompt: Some("Which emotion does the speaker express?".into()),
        ..AlmOptions::default()
    };
    let scorer = AlmScorer::open(&path("tiny-voxtral"), options, &Device::flex()).expect("open");
    assert_eq!(scorer.architecture(), Architecture::Voxtral);
    let (_, audio) = whisper_ref.f32("audio.1");
    assert_eq!(
        scorer.input_ids(audio.len()).expect("ids"),
        reference.ids("input_ids.1")
    );
    let got = scorer.score(&[&audio]).expect("score");
    let s = got.utterances[0].scores.as_ref().expect("scores");
    let (shape, flat) = reference.f32("logits_last.1");
    let last = &flat[(shape[0] - 1) * shape[1]..];
    let want = FirstTokenScorer::new(scorer.verbaliser().clone(), 1.0)
        .expect("scorer")
        .score(last)
        .expect("reference");
    let dl = max_abs_diff(&s.logits, &want.logits);
    let dp = max_abs_diff(&s.probs, &want.probs);
    println!("voxtral: label logits |Δ| {dl:.2e}, probs |Δ| {dp:.2e}");
    assert!(dl <= 1e-3 && dp <= 1e-4, "{dl} {dp}");
}

#[test]
fn bad_directories_and_inputs_are_clear_errors() {
    let device = Device::flex();
    let open = |spec: &str| AlmScorer::open(spec, AlmOptions::default(), &device);
    let err = open("/nonexistent/emomon-model").expect_err("missing");
    assert!(
        err.to_string().contains("/nonexistent/emomon-model"),
        "{err}"
    );

    let err = open(&path("tiny-qwen2")).expect_err("not an audio model");
    assert!(
        matches!(err, AlmError::Architecture { .. })
            && err.to_string().contains("Qwen2ForCausalLM"),
        "{err}"
    );

    // A checkpoint missing one tensor: the error names it.
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["config.json", "tokenizer.json", "preprocessor_config.json"] {
        std::fs::copy(fixture("tiny-whisper").join(f), dir.path().join(f)).expect("copy");
    }
    let bytes = std::fs::read(fixture("tiny-whisper/model.safetensors")).expect("weights");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let dropped = "model.decoder.layer_norm.weight";
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != dropped)
        .collect();
    safetensors::serialize_to_file(kept, None, &dir.path().join("model.safetensors"))
        .expect("write");
    let err = open(dir.path().to_str().expect("utf-8")).expect_err("missing tensor");
    assert!(err.to_string().contains(dropped), "{err}");

    // Labels whose first tokens collide, a bad temperature, too-short audio.
    let collide = AlmOptions {
        labels: vec!["sad".into(), "surprise".into()],
        ..AlmOptions::default()
    };
    let err = AlmScorer::open(&path("tiny-qwen2-audio"), collide, &device).expect_err("collide");
    assert!(err.to_string().contains("share the first token"), "{err}");
    let cold = AlmOptions {
        temperature: 0.0,
        ..AlmOptions::default()
    };
    assert!(AlmScorer::open(&path("tiny-whisper"), cold, &device).is_err());
    let scorer = open(&path("tiny-whisper")).expect("open");
    let err = scorer.score(&[&[0.0; 100]]).expect_err("too short");
    assert!(err.to_string().contains("utterance 0"), "{err}");
}
