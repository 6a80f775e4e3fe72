//! emomon: a live, offline monitor of how a speaker's emotion is heard.
//!
//! Data flow (see `../shared/DESIGN.md`): an [`audio`] source (microphone or
//! file) feeds 16 kHz mono audio to the [`vad`] and [`segmenter`], which cut it
//! into timed [`utterance::Utterance`]s; those are scored by an audio-language
//! model (`emomon-models`), aggregated, logged and drawn by `emomon-tui`.

pub mod aggregate;
pub mod audio;
pub mod capture;
pub mod eval;
pub mod model_scorer;
pub mod pipeline;
pub mod plotting;
pub mod prosody;
pub mod remote;
pub mod replay;
pub mod report;
pub mod run;
pub mod scoring;
pub mod segmenter;
pub mod session_log;
pub mod speaker;
pub mod utc;
pub mod utterance;
pub mod vad;
pub mod view_feed;
pub mod workers;
