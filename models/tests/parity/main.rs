//! The models crate's parity tests (tiny fixtures and real weights against
//! transformers) in one binary: one link of burn instead of one per file. Run one
//! area with `cargo test -p emomon-models --test parity MODULE::`.

#[path = "../common/mod.rs"]
mod common;

mod alm_fixtures;
mod chat_template_fixtures;
mod mel_fixtures;
mod quant_fixtures;
mod qwen2_audio_fixtures;
mod qwen2_fixtures;
mod scorer_fixtures;
mod speaker_real;
mod tekken_fixtures;
mod tekken_voxtral;
mod voxtral_fixtures;
mod whisper_fixtures;
mod whisper_real;
