//! `tokenizer.json` (Hugging Face `tokenizers`), or Mistral's `tekken.json` converted to
//! it ([`crate::tekken`]), behind a small trait, so that the verbaliser and scorers can
//! be tested with hand-made vocabularies as well.

use std::path::Path;

/// Errors of tokenizer loading and use.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The tokenizer file could not be loaded.
    #[error("{path}: cannot load tokenizer: {message}")]
    Load {
        /// File that failed.
        path: String,
        /// What the tokenizers library said.
        message: String,
    },
    /// Encoding or decoding failed.
    #[error("tokenizer failed on {input:?}: {message}")]
    Encode {
        /// Input text (or ids, formatted).
        input: String,
        /// What the tokenizers library said.
        message: String,
    },
}

/// What the scorers need from a tokenizer: text ↔ ids, without special tokens added.
pub trait TokenText {
    /// Token ids of `text` exactly as written (no BOS/EOS or template added).
    fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError>;
    /// Text of `ids` (special tokens kept).
    fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError>;
}

/// A Hugging Face `tokenizer.json`.
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("vocab_size", &self.inner.get_vocab_size(true))
            .finish()
    }
}

impl HfTokenizer {
    /// Loads `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizerError::Load {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self { inner })
    }

    /// Loads Mistral's `tekken.json` ([`crate::tekken`]).
    pub fn from_tekken(path: &Path) -> Result<Self, TokenizerError> {
        Ok(Self {
            inner: crate::tekken::load(path)?,
        })
    }

    /// The tokenizer of a model directory: `tokenizer.json`, else `tekken.json` (which
    /// Mistral checkpoints such as Voxtral ship instead); `None` if it has neither.
    pub fn from_dir(dir: &Path) -> Option<Result<Self, TokenizerError>> {
        let hf = dir.join("tokenizer.json");
        if hf.is_file() {
            return Some(Self::from_file(&hf));
        }
        let tekken = dir.join("tekken.json");
        tekken.is_file().then(|| Self::from_tekken(&tekken))
    }

    /// Id of a token given by its exact string (e.g. `<|startoftranscript|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token string of `id` (e.g. `<|AUDIO|>`), if in the vocabulary.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

impl TokenText for HfTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TokenizerError::Encode {
                input: text.to_string(),
                message: e.to_string(),
            })
    }

    fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| TokenizerError::Encode {
                input: format!("{ids:?}"),
                message: e.to_string(),
            })
    }
}
