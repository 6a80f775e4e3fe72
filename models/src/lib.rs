//! Audio-language models for emomon (see `../shared/DESIGN.md`, "Models").
//!
//! Done so far: the Whisper log-mel front end ([`mel`]), HF safetensors loading by
//! explicit name ([`safetensors_load`]), shared transformer blocks ([`nn`]), Whisper
//! encoder/decoder with KV cache ([`whisper`]) and its timed stages
//! ([`whisper_runner`]), Qwen2/Llama decoders ([`qwen2`]), Qwen2-Audio ([`qwen2_audio`])
//! and Voxtral ([`voxtral`]) on burn, `tokenizer.json` loading ([`tokenizer`]) and the
//! label readouts ([`scorer`]). Every model is checked against transformers on tiny
//! random fixtures (see `models/fixtures/README.md`). [`alm::EmotionModel`] is the one
//! interface callers score through: [`alm::AlmScorer`] opens any supported directory by
//! its `architectures` (one module per family, one generation loop in [`generate`]);
//! [`default_model::DefaultScorer`] is the built-in default. Prompts for chat models
//! come from the directory's own chat template ([`chat`]); [`quant`] gives optional
//! 8-bit weights; [`device`] picks the backend.

pub mod alm;
pub mod chat;
pub mod default_model;
pub mod device;
pub mod emotion_adapter;
pub mod generate;
pub mod hub;
pub mod kernels;
pub mod mel;
pub mod nn;
pub mod quant;
pub mod qwen2;
pub mod qwen2_audio;
pub mod safetensors_load;
pub mod scorer;
pub mod speaker;
pub mod tekken;
pub mod tokenizer;
pub mod voxtral;
pub mod whisper;
pub mod whisper_runner;

/// The burn device type, re-exported so callers need not depend on burn themselves.
pub use burn::prelude::Device;
