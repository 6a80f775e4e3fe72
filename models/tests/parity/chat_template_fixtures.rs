//! Chat templates rendered by emomon (minijinja) vs transformers'
//! `tokenizer.apply_chat_template(…, tokenize=False)` (jinja2), text and token ids, for
//! Qwen2-Audio's real template, the Voxtral fixture template and a template exercising
//! whitespace control, namespaces, `tojson` and Python string methods. References from
//! `scripts/make_chat_fixtures.py`.

use crate::common;

use common::fixture;
use emomon_models::chat::{ChatTemplate, QWEN2_AUDIO_TEMPLATE, audio_question_messages};
use emomon_models::tokenizer::{HfTokenizer, TokenText};

/// The reference file parsed into minijinja values, so message maps keep the file's key
/// order as Python dicts do (`tojson` shows it).
fn reference() -> minijinja::Value {
    let text = std::fs::read_to_string(fixture("chat-template-ref.json")).expect("reference");
    serde_json::from_str(&text).expect("reference json")
}

fn template(reference: &minijinja::Value, name: &str) -> ChatTemplate {
    match name {
        "qwen2_audio" => ChatTemplate::from_dir(&fixture("tiny-qwen2-audio"))
            .expect("tokenizer_config.json")
            .expect("has a chat template"),
        "voxtral_fixture" => ChatTemplate::from_dir(&fixture("tiny-voxtral"))
            .expect("tokenizer_config.json")
            .expect("has a chat template"),
        other => {
            let source = reference
                .get_attr("templates")
                .and_then(|t| t.get_attr(other))
                .expect("template");
            let special: serde_json::Value = serde_json::to_value(
                reference
                    .get_attr("special_tokens")
                    .and_then(|t| t.get_attr(other))
                    .expect("special tokens"),
            )
            .expect("json");
            ChatTemplate::new(source.as_str().expect("string"), other).with_special_tokens(&special)
        }
    }
}

#[test]
fn rendered_text_and_ids_equal_transformers() {
    let reference = reference();
    let tokenizer =
        HfTokenizer::from_file(&fixture("tiny-whisper/tokenizer.json")).expect("tokenizer");
    let cases = reference.get_attr("cases").expect("cases");
    let mut n = 0;
    for case in cases.try_iter().expect("list") {
        let name = case.get_attr("template").expect("name").to_string();
        let conversation = case.get_attr("conversation").expect("conversation");
        let generation = case
            .get_attr("add_generation_prompt")
            .expect("flag")
            .is_true();
        let messages = case.get_attr("messages").expect("messages");
        let want = case.get_attr("text").expect("text");
        let got = template(&reference, &name)
            .render(&messages, generation)
            .unwrap_or_else(|e| panic!("{name}/{conversation}: {e}"));
        assert_eq!(
            got,
            want.as_str().expect("text"),
            "{name}/{conversation}/generation prompt {generation}"
        );
        let want_ids: Vec<u32> = serde_json::from_value(
            serde_json::to_value(case.get_attr("ids").expect("ids")).expect("json"),
        )
        .expect("ids");
        assert_eq!(
            tokenizer.encode(&got).expect("encode"),
            want_ids,
            "{name}/{conversation}"
        );
        n += 1;
    }
    println!("{n} template renderings equal transformers'");
    assert!(n >= 18);
}

#[test]
fn builtin_qwen2_audio_template_is_the_published_one() {
    // The fixture directory carries transformers' template; the built-in fallback must
    // render the same prompt.
    let from_dir = template(&reference(), "qwen2_audio");
    let builtin = ChatTemplate::new(QWEN2_AUDIO_TEMPLATE, "built-in");
    let messages = audio_question_messages("How does the speaker feel?");
    assert_eq!(
        from_dir.render(&messages, true).expect("dir"),
        builtin.render(&messages, true).expect("built-in")
    );
}

#[test]
fn directory_without_template_has_none() {
    assert!(
        ChatTemplate::from_dir(&fixture("tiny-whisper"))
            .expect("reads")
            .is_none()
    );
}
