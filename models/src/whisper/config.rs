//! `WhisperConfig` as found in a Hugging Face `config.json`.
//!
//! Only the fields that change the computation are read; everything else in the
//! file (dropout, spec-augment, generation hints) is ignored. Values the model code
//! does not implement are rejected by [`WhisperConfig::validate`] rather than silently
//! computing something else.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::safetensors_load::{LoadError, read_json};

/// Architecture hyper-parameters of `WhisperForConditionalGeneration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhisperConfig {
    /// Vocabulary size (rows of the token embedding / output projection).
    pub vocab_size: usize,
    /// Mel bins of the input features (80, or 128 for large-v3).
    pub num_mel_bins: usize,
    /// Hidden size shared by encoder and decoder.
    pub d_model: usize,
    /// Encoder transformer layers.
    pub encoder_layers: usize,
    /// Encoder attention heads.
    pub encoder_attention_heads: usize,
    /// Encoder MLP hidden size.
    pub encoder_ffn_dim: usize,
    /// Decoder transformer layers.
    pub decoder_layers: usize,
    /// Decoder attention heads.
    pub decoder_attention_heads: usize,
    /// Decoder MLP hidden size.
    pub decoder_ffn_dim: usize,
    /// Encoder positions after the stride-2 convolution (1500 for 30 s).
    #[serde(default = "default_source_positions")]
    pub max_source_positions: usize,
    /// Decoder positions (448 for released Whisper models).
    #[serde(default = "default_target_positions")]
    pub max_target_positions: usize,
    /// MLP activation; only `gelu` (erf form) is implemented.
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// Whether embeddings are scaled by sqrt(d_model); Whisper checkpoints use `false`.
    #[serde(default)]
    pub scale_embedding: bool,
    /// Token that starts decoding (`<|startoftranscript|>`).
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// End-of-text token.
    #[serde(default, deserialize_with = "one_or_first")]
    pub eos_token_id: Option<u32>,
    /// Whether the output projection shares the token embedding (the default for Whisper).
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
}

fn default_source_positions() -> usize {
    1500
}
fn default_target_positions() -> usize {
    448
}
fn default_activation() -> String {
    "gelu".into()
}
fn default_true() -> bool {
    true
}

/// `eos_token_id` may be an integer or a list in newer configs; keep the first.
fn one_or_first<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(u32),
        Many(Vec<u32>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(v)) => Some(v),
        Some(OneOrMany::Many(v)) => v.first().copied(),
    })
}

impl WhisperConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, LoadError> {
        let config: Self = read_json(path)?;
        config.validate().map_err(|message| LoadError::Json {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Rejects configurations this implementation would compute differently from the reference.
    pub fn validate(&self) -> Result<(), String> {
        if self.activation_function != "gelu" {
            return Err(format!(
                "activation_function `{}` is not supported (only `gelu`)",
                self.activation_function
            ));
        }
        if self.scale_embedding {
            return Err("scale_embedding = true is not supported".into());
        }
        for (what, heads) in [
            ("encoder", self.encoder_attention_heads),
            ("decoder", self.decoder_attention_heads),
        ] {
            if heads == 0 || !self.d_model.is_multiple_of(heads) {
                return Err(format!(
                    "d_model {} is not divisible by {what}_attention_heads {heads}",
                    self.d_model
                ));
            }
        }
        Ok(())
    }

    /// The encoder's shape.
    pub fn encoder_dims(&self) -> super::EncoderDims {
        super::EncoderDims {
            num_mel_bins: self.num_mel_bins,
            d_model: self.d_model,
            encoder_layers: self.encoder_layers,
            encoder_attention_heads: self.encoder_attention_heads,
            encoder_ffn_dim: self.encoder_ffn_dim,
            max_source_positions: self.max_source_positions,
        }
    }

    /// Mel frames the encoder accepts at most (twice its positions: conv2 has stride 2).
    pub fn max_input_frames(&self) -> usize {
        2 * self.max_source_positions
    }
}
