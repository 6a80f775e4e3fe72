//! A Voxtral directory as real checkpoints ship it — `tekken.json`, no tokenizer.json,
//! no chat template — end to end against transformers.
//!
//! `models/fixtures/tiny-voxtral-tekken` (made by
//! `scripts/make_tekken_voxtral_fixture.py`) is a tiny random
//! `VoxtralForConditionalGeneration` whose text vocabulary is the 4000 ids of
//! `tiny-tekken/tekken.json`. The reference is transformers' own path for such a
//! directory: `VoxtralProcessor.from_pretrained` (WhisperFeatureExtractor +
//! `MistralCommonBackend` reading tekken.json), `apply_chat_template` of a user turn
//! [audio, question] with `add_generation_prompt`, then the model's forward and greedy
//! `generate`, on two real clips of `tests/fixtures/audio` and one of 33 s (demo.wav three
//! times: two 30 s chunks, 750 audio tokens).
//!
//! emomon opens the same directory with [`AlmScorer::open`] (tekken.json through
//! `tekken.rs`, the built-in Voxtral template) and must give identical input ids,
//! label-token logits within 1e-3 and probabilities within 1e-4 (first-token), and the
//! same greedy tokens with a token-average distribution within 1e-4.

use crate::common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::{Reference, fixture, max_abs_diff};
use emomon_models::alm::{AlmOptions, AlmScorer, Architecture, EmotionModel};
use emomon_models::scorer::{FirstTokenScorer, Method, TokenAverageScorer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Meta {
    tokenizer_class: String,
    labels: Vec<String>,
    question: String,
    greedy_steps: usize,
    /// mistral-common's ids of each label form ("neutral", "Neutral", …).
    label_token_ids: std::collections::BTreeMap<String, Vec<u32>>,
    clips: Vec<Clip>,
}

#[derive(Deserialize)]
struct Clip {
    path: String,
    /// The file's samples this many times over (demo.wav ×3 = 33 s, two chunks).
    repeat: usize,
    samples: usize,
}

fn meta() -> Meta {
    let text = std::fs::read_to_string(fixture("tiny-voxtral-tekken-ref.json")).expect("ref json");
    serde_json::from_str(&text).expect("ref json")
}

fn reference() -> Reference {
    Reference::load_from(&fixture("tiny-voxtral-tekken-ref.safetensors"))
}

fn dir() -> String {
    fixture("tiny-voxtral-tekken")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// 16-bit PCM mono WAV samples as soundfile reads them (`x / 32768`).
fn read_pcm16(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            let format = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
            let bits = u16::from_le_bytes([body[14], body[15]]);
            assert_eq!((format, channels, rate, bits), (1, 1, 16_000, 16));
        } else if id == b"data" {
            return body
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                .collect();
        }
        at += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

fn clip_audio(clip: &Clip) -> Vec<f32> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(&clip.path);
    let audio = read_pcm16(&path).repeat(clip.repeat);
    assert_eq!(audio.len(), clip.samples, "{}", clip.path);
    audio
}

fn scorer(meta: &Meta, method: Method) -> AlmScorer {
    let options = AlmOptions {
        method,
        labels: meta.labels.clone(),
        prompt: Some(meta.question.clone()),
        max_new_tokens: meta.greedy_steps,
        ..AlmOptions::default()
    };
    AlmScorer::open(&dir(), options, &Device::flex()).expect("open")
}

#[test]
fn directory_is_tekken_only() {
    let d = fixture("tiny-voxtral-tekken");
    assert!(d.join("tekken.json").is_file());
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ] {
        assert!(!d.join(f).exists(), "{f} must not be in the fixture");
    }
    // transformers used mistral-common for it, not a converted HF tokenizer.
    assert_eq!(meta().tokenizer_class, "MistralCommonBackend");
}

#[test]
fn tekken_voxtral_prompt_and_first_token_match_transformers() {
    let meta = meta();
    let reference = reference();
    let scorer = scorer(&meta, Method::FirstToken);
    assert_eq!(scorer.architecture(), Architecture::Voxtral);
    // The verbaliser's first tokens are mistral-common's first token of each form.
    for lt in scorer.verbaliser().label_tokens() {
        let mut want: Vec<u32> = [lt.label.clone(), capitalise(&lt.label)]
            .iter()
            .map(|form| meta.label_token_ids[form][0])
            .collect();
        want.dedup();
        assert_eq!(lt.first_tokens, want, "label {}", lt.label);
    }
    for (i, clip) in meta.clips.iter().enumerate() {
        let audio = clip_audio(clip);
        assert_eq!(
            scorer.input_ids(audio.len()).expect("ids"),
            reference.ids(&format!("input_ids.{i}")),
            "clip {i}: input ids"
        );
        let got = scorer.score(&[&audio]).expect("score");
        let u = &got.utterances[0];
        assert_eq!(
            u.prompt_tokens,
            reference.ids(&format!("input_ids.{i}")).len()
        );
        let s = u.scores.as_ref().expect("scores");
        let (_, logits) = reference.f32(&format!("answer_logits.{i}"));
        let want = FirstTokenScorer::new(scorer.verbaliser().clone(), 1.0)
            .expect("scorer")
            .score(&logits)
            .expect("reference scores");
        let dl = max_abs_diff(&s.logits, &want.logits);
        let dp = max_abs_diff(&s.probs, &want.probs);
        println!(
            "tekken voxtral clip {i} ({}): label logits |Δ| {dl:.2e}, probs |Δ| {dp:.2e}",
            clip.path
        );
        assert!(dl <= 1e-3 && dp <= 1e-4, "clip {i}: {dl} {dp}");
    }
}

#[test]
fn tekken_voxtral_token_average_follows_transformers_generate() {
    let meta = meta();
    let reference = reference();
    let scorer = scorer(&meta, Method::TokenAverage);
    for (i, clip) in meta.clips.iter().enumerate() {
        let audio = clip_audio(clip);
        let got = scorer.score(&[&audio]).expect("score");
        let u = &got.utterances[0];
        let want_tokens = reference.ids(&format!("greedy_tokens.{i}"));
        assert_eq!(u.generated.as_ref().expect("generated").0, want_tokens);
        let (shape, flat) = reference.f32(&format!("greedy_logits.{i}"));
        let steps: Vec<Vec<f32>> = flat.chunks(shape[1]).map(<[f32]>::to_vec).collect();
        let want = TokenAverageScorer::new(scorer.verbaliser().clone())
            .score(&steps)
            .expect("reference");
        let s = u.scores.as_ref().expect("scores");
        let d = max_abs_diff(&s.probs, &want.probs);
        println!("tekken voxtral clip {i}: tokens {want_tokens:?}, token-average φ |Δ| {d:.2e}");
        assert!(d <= 1e-4, "clip {i}: {d}");
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
