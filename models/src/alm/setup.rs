//! What a model directory holds besides weights, read once at open: the family
//! (`architectures`), the tokenizer, the chat template (or a built-in fallback) and the
//! end-of-generation tokens, each checked against the weights.

use std::path::Path;

use serde_json::Value;

use super::AlmError;
use crate::chat::ChatTemplate;
use crate::mel::{MelConfig, MelExtractor};
use crate::safetensors_load::read_json;
use crate::tokenizer::HfTokenizer;

/// Which model family a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `WhisperForConditionalGeneration`.
    Whisper,
    /// `Qwen2AudioForConditionalGeneration`.
    Qwen2Audio,
    /// `VoxtralForConditionalGeneration`.
    Voxtral,
}

impl Architecture {
    /// Reads `config.json`'s `architectures` in `dir`.
    pub fn detect(dir: &Path) -> Result<Self, AlmError> {
        let path = dir.join("config.json");
        if !dir.is_dir() {
            return Err(AlmError::Invalid(format!(
                "{}: model directory does not exist",
                dir.display()
            )));
        }
        let config: Value = read_json(&path)?;
        let names: Vec<&str> = config
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let found = names
            .iter()
            .find_map(|n| Self::ALL.into_iter().find(|a| a.as_str() == *n));
        found.ok_or_else(|| AlmError::Architecture {
            path: path.clone(),
            found: if names.is_empty() {
                "none (no `architectures` list)".into()
            } else {
                names.join(", ")
            },
        })
    }

    const ALL: [Self; 3] = [Self::Whisper, Self::Qwen2Audio, Self::Voxtral];

    /// The HF class name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whisper => "WhisperForConditionalGeneration",
            Self::Qwen2Audio => "Qwen2AudioForConditionalGeneration",
            Self::Voxtral => "VoxtralForConditionalGeneration",
        }
    }

    /// The family's usual end-of-turn token strings, for directories that name no
    /// `eos_token_id`.
    fn end_of_turn(self) -> &'static [&'static str] {
        match self {
            Self::Whisper => &["<|endoftext|>"],
            Self::Qwen2Audio => &["<|im_end|>", "<|endoftext|>"],
            Self::Voxtral => &["</s>"],
        }
    }
}

/// `tokenizer.json`, else Mistral's `tekken.json` (what Voxtral checkpoints ship).
pub(crate) fn load_tokenizer(dir: &Path) -> Result<HfTokenizer, AlmError> {
    HfTokenizer::from_dir(dir).ok_or_else(|| {
        AlmError::Invalid(format!(
            "{}: missing tokenizer.json (or Mistral's tekken.json); the model directory needs its tokenizer",
            dir.display()
        ))
    })?
    .map_err(AlmError::from)
}

/// The log-mel front end of `dir` (its preprocessor_config.json, if any).
pub(crate) fn mel_for(dir: &Path, n_mels: usize) -> Result<MelExtractor, AlmError> {
    let config = MelConfig::for_model_dir(dir, n_mels)?;
    Ok(MelExtractor::new(config)?)
}

/// The directory's chat template, else the built-in `fallback` for `family` with the
/// directory's special tokens.
pub(crate) fn template_or(
    dir: &Path,
    fallback: &str,
    family: &str,
) -> Result<ChatTemplate, AlmError> {
    if let Some(t) = ChatTemplate::from_dir(dir)? {
        return Ok(t);
    }
    tracing::info!(dir = %dir.display(), "no chat template in the model directory; using the built-in {family} template");
    let mut t = ChatTemplate::new(fallback, format!("built-in {family} template"));
    let config = dir.join("tokenizer_config.json");
    if config.is_file()
        && let Ok(v) = read_json::<Value>(&config)
    {
        t = t.with_special_tokens(&v);
    }
    Ok(t)
}

/// Every token id the tokenizer can produce must have an embedding row; a tokenizer
/// from another checkpoint would otherwise index past the table.
pub(crate) fn check_vocab(
    tokenizer: &HfTokenizer,
    model_vocab: usize,
    dir: &Path,
) -> Result<(), AlmError> {
    let ids = tokenizer.vocab_size();
    if ids > model_vocab {
        return Err(AlmError::Invalid(format!(
            "{}: the tokenizer has {ids} token ids but config.json's text vocab_size is \
             {model_vocab}; the tokenizer file does not belong to these weights",
            dir.display()
        )));
    }
    Ok(())
}

/// The text of the audio placeholder token `id`.
pub(crate) fn token_text(tokenizer: &HfTokenizer, id: u32, dir: &Path) -> Result<String, AlmError> {
    tokenizer.id_to_token(id).ok_or_else(|| {
        AlmError::Invalid(format!(
            "{}: the audio token id {id} from config.json is not in the tokenizer",
            dir.display()
        ))
    })
}

/// End-of-generation tokens: generation_config.json's `eos_token_id` (a number or a
/// list), else config.json's (top level or `text_config`), else the family's usual
/// end-of-turn token strings found in the vocabulary.
pub(crate) fn eos_tokens(
    dir: &Path,
    arch: Architecture,
    tokenizer: &HfTokenizer,
) -> Result<Vec<u32>, AlmError> {
    let ids = |v: Option<&Value>| -> Vec<u32> {
        match v {
            Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_u64)
                .map(|n| n as u32)
                .collect(),
            _ => Vec::new(),
        }
    };
    let gen_path = dir.join("generation_config.json");
    if gen_path.is_file() {
        let v: Value = read_json(&gen_path)?;
        let found = ids(v.get("eos_token_id"));
        if !found.is_empty() {
            return Ok(found);
        }
    }
    let config: Value = read_json(&dir.join("config.json"))?;
    let mut found = ids(config.get("eos_token_id"));
    if found.is_empty() {
        found = ids(config
            .get("text_config")
            .and_then(|t| t.get("eos_token_id")));
    }
    if found.is_empty() {
        found = arch
            .end_of_turn()
            .iter()
            .filter_map(|n| tokenizer.token_id(n))
            .collect();
    }
    Ok(found)
}
