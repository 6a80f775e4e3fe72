//! Audio-language models for emomon (see `../shared/DESIGN.md`, "Models").
//!
//! Done so far: the Whisper log-mel front end ([`mel`]), HF safetensors loading by
//! explicit name ([`safetensors_load`]), shared transformer blocks ([`nn`]) and Whisper
//! encoder/decoder with KV cache on burn ([`whisper`]), `tokenizer.json` loading
//! ([`tokenizer`]) and the verbaliser + `first-token` scorer ([`scorer`]). To come under
//! the models issue: Qwen2-Audio and Voxtral, chat templates, the other scorers.

pub mod mel;
pub mod nn;
pub mod qwen2;
pub mod qwen2_audio;
pub mod safetensors_load;
pub mod scorer;
pub mod tokenizer;
pub mod whisper;
