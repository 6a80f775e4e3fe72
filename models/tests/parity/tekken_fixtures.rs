//! Mistral `tekken.json` loading and the built-in Voxtral prompt layout against
//! mistral-common, the library transformers formats Voxtral prompts with. The fixture
//! (models/fixtures/tiny-tekken, made by scripts/make_tekken_fixture.py) is a cut of
//! the tekken file in the mistral-common wheel with Voxtral's audio section; its
//! reference.json holds mistral-common's ids for plain texts and for
//! `encode_chat_completion` of an audio + question user turn.

use std::path::PathBuf;

use emomon_models::chat::{ChatTemplate, VOXTRAL_TEMPLATE};
use emomon_models::tokenizer::{HfTokenizer, TokenText};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    encodings: Vec<Encoding>,
    full_source: String,
    full_encodings: Vec<Encoding>,
    voxtral_prompts: Vec<Prompt>,
}

#[derive(Deserialize)]
struct Encoding {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Prompt {
    question: String,
    samples: usize,
    ids: Vec<u32>,
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-tekken")
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixture().join("reference.json")).expect("reference");
    serde_json::from_str(&text).expect("reference json")
}

fn tokenizer() -> HfTokenizer {
    HfTokenizer::from_dir(&fixture())
        .expect("the directory has tekken.json")
        .expect("tekken.json loads")
}

#[test]
fn tekken_ids_equal_mistral_common() {
    let tok = tokenizer();
    for e in reference().encodings {
        assert_eq!(tok.encode(&e.text).expect("encode"), e.ids, "{:?}", e.text);
        // Decoding gives the text back (byte-level, lossless).
        assert_eq!(tok.decode(&e.ids).expect("decode"), e.text);
    }
    assert_eq!(tok.token_id("[AUDIO]"), Some(24));
    assert_eq!(tok.token_id("[BEGIN_AUDIO]"), Some(25));
    assert_eq!(tok.token_id("<s>"), Some(1));
}

/// The built-in template, with `[AUDIO]` repeated 375 times per started 30 s of audio
/// (what emomon's Voxtral path feeds the model), tokenises to exactly the ids
/// mistral-common builds for the same audio + question user turn.
#[test]
fn builtin_voxtral_template_equals_mistral_common_layout() {
    let tok = tokenizer();
    let template = ChatTemplate::new(VOXTRAL_TEMPLATE, "built-in Voxtral template");
    let prompts = reference().voxtral_prompts;
    assert!(prompts.len() >= 4);
    for p in prompts {
        let text = template.render_audio_question(&p.question).expect("render");
        let audio_tokens = p.samples.div_ceil(30 * 16_000).max(1) * 375;
        let expanded = text.replacen("[AUDIO]", &"[AUDIO]".repeat(audio_tokens), 1);
        let ids = tok.encode(&expanded).expect("encode");
        assert_eq!(
            ids, p.ids,
            "{} samples, {:?}\nemomon:         {expanded:.80}…",
            p.samples, p.question
        );
    }
}

/// The whole tekken file of the mistral-common wheel (131,072 ranks, real merges, no
/// special-token list) when `EMOMON_TEKKEN` points at it; `.ci/run` extracts it from
/// the wheel it downloads.
#[test]
fn whole_shipped_tekken_file_equals_mistral_common() {
    let Some(path) = std::env::var_os("EMOMON_TEKKEN").map(PathBuf::from) else {
        crate::common::skip(
            "whole_shipped_tekken_file_equals_mistral_common",
            "set EMOMON_TEKKEN to mistral_common/data/tekken_240911.json",
        );
        return;
    };
    let tok = HfTokenizer::from_tekken(&path).expect("tekken.json loads");
    let r = reference();
    assert!(r.full_source.ends_with("tekken_240911.json"));
    for e in r.full_encodings {
        assert_eq!(tok.encode(&e.text).expect("encode"), e.ids, "{:?}", e.text);
        assert_eq!(tok.decode(&e.ids).expect("decode"), e.text);
    }
    assert_eq!(tok.token_id("[INST]"), Some(3));
}

/// A Voxtral directory with tekken.json instead of tokenizer.json gets its tokenizer
/// from it; one whose tekken file does not fit the weights is refused by name rather
/// than indexing past the embedding table.
#[test]
fn voxtral_directory_with_a_foreign_tekken_file_is_refused() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-voxtral");
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["config.json", "generation_config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
    }
    std::fs::copy(
        fixture().join("tekken.json"),
        dir.path().join("tekken.json"),
    )
    .expect("copy");
    let opened = emomon_models::alm::AlmScorer::open(
        dir.path().to_str().expect("utf-8"),
        Default::default(),
        &emomon_models::Device::flex(),
    );
    let Err(err) = opened else {
        panic!("a 4000-id tokenizer does not fit a 416-row embedding, yet it opened");
    };
    let err = err.to_string();
    assert!(
        err.contains("4000 token ids") && err.contains("vocab_size is 416"),
        "{err}"
    );
}
