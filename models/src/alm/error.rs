//! [`AlmError`]: every way opening or scoring with an audio-language model fails.

use std::path::PathBuf;

use crate::chat::ChatError;
use crate::hub::HubError;
use crate::mel::MelError;
use crate::qwen2_audio::Qwen2AudioError;
use crate::safetensors_load::LoadError;
use crate::scorer::ReadoutError;
use crate::tokenizer::TokenizerError;
use crate::whisper_runner::WhisperRunnerError;

/// Errors of opening a model or scoring with it.
#[derive(Debug, thiserror::Error)]
pub enum AlmError {
    /// The model could not be located.
    #[error(transparent)]
    Hub(Box<HubError>),
    /// config.json names an architecture emomon does not implement.
    #[error(
        "{path}: architecture {found} is not supported; emomon runs WhisperForConditionalGeneration, \
         Qwen2AudioForConditionalGeneration and VoxtralForConditionalGeneration"
    )]
    Architecture {
        /// The config.json read.
        path: PathBuf,
        /// What it says (or `none`).
        found: String,
    },
    /// Reading config or weights failed (missing, mis-shaped and unused tensors are named).
    #[error(transparent)]
    Load(Box<LoadError>),
    /// The Whisper stages (front end, encoder, decoder) failed.
    #[error(transparent)]
    Whisper(Box<WhisperRunnerError>),
    /// The Qwen2-Audio or Voxtral model failed.
    #[error(transparent)]
    Chat(Box<Qwen2AudioError>),
    /// The chat template could not be found or rendered.
    #[error(transparent)]
    Template(Box<ChatError>),
    /// Tokenizer failure.
    #[error(transparent)]
    Tokenizer(Box<TokenizerError>),
    /// Front-end failure.
    #[error(transparent)]
    Mel(Box<MelError>),
    /// Label set or scoring failure.
    #[error(transparent)]
    Score(Box<ReadoutError>),
    /// The model cannot do what was asked (e.g. the default model generating text).
    #[error("{0}")]
    Unsupported(String),
    /// Anything else that is wrong with the directory or the input.
    #[error("{0}")]
    Invalid(String),
}

// Boxed so that `Result<_, AlmError>` stays small (clippy::result_large_err); `?` still
// converts every source error.
macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for AlmError {
            fn from(e: $ty) -> Self {
                Self::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(
    Hub(HubError),
    Load(LoadError),
    Whisper(WhisperRunnerError),
    Chat(Qwen2AudioError),
    Template(ChatError),
    Tokenizer(TokenizerError),
    Mel(MelError),
    Score(ReadoutError),
);

impl From<crate::whisper::WhisperError> for AlmError {
    fn from(e: crate::whisper::WhisperError) -> Self {
        WhisperRunnerError::from(e).into()
    }
}
