//! Qwen2-Audio (`Qwen2AudioForConditionalGeneration`): Whisper-style audio tower with a
//! ×2 average pool, a linear projector, and the Qwen2 decoder. Audio embeddings replace
//! the `<|AUDIO|>` placeholder tokens, in order, as transformers' `masked_scatter` does.
//!
//! The reference encoder always takes 30 s of padded features and masks the padded
//! frames out of self-attention. The outputs actually used (the first
//! `(conv_len - 2) / 2 + 1` pooled tokens) only depend on the first `conv_len`
//! positions, so here the transformer layers run on exactly those positions: the same
//! numbers without attending over (or computing) the padding.
//!
//! Weight names are the ones published checkpoints use (`audio_tower.*`,
//! `multi_modal_projector.linear.*`, `language_model.model.*`, `language_model.lm_head.*`).

use std::path::Path;

use burn::nn::Linear;
use burn::prelude::*;
use serde::Deserialize;

use crate::nn::{load_linear, splice_placeholders};
use crate::qwen2::{Qwen2, Qwen2Cache, Qwen2Config, Qwen2Error};
use crate::safetensors_load::{LoadError, TensorStore, read_json};
use crate::whisper::{EncoderDims, WhisperEncoder, WhisperError};

/// Errors of the Qwen2-Audio model.
#[derive(Debug, thiserror::Error)]
pub enum Qwen2AudioError {
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The audio tower rejected its input.
    #[error(transparent)]
    Audio(#[from] WhisperError),
    /// The decoder rejected its input.
    #[error(transparent)]
    Text(#[from] Qwen2Error),
    /// Prompt and audio do not fit together.
    #[error("invalid Qwen2-Audio input: {0}")]
    Input(String),
}

/// `Qwen2AudioConfig`.
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen2AudioConfig {
    /// The audio tower's shape.
    pub audio_config: EncoderDims,
    /// The decoder's config.
    pub text_config: Qwen2Config,
    /// Id of the `<|AUDIO|>` placeholder token.
    #[serde(alias = "audio_token_id")]
    pub audio_token_index: u32,
}

/// Lengths derived from the number of valid (unpadded) mel frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLengths {
    /// Positions after the stride-2 convolution: `(frames - 1) / 2 + 1`.
    pub conv: usize,
    /// Audio tokens after the ×2 average pool: `(conv - 2) / 2 + 1`.
    pub tokens: usize,
}

impl AudioLengths {
    /// As transformers' `_get_feat_extract_output_lengths`; `valid_frames` counts the mel
    /// frames of the real audio (`ceil(samples / 160)`, the processor's attention mask).
    pub fn from_frames(valid_frames: usize) -> Option<Self> {
        if valid_frames < 3 {
            return None;
        }
        let conv = (valid_frames - 1) / 2 + 1;
        Some(Self {
            conv,
            tokens: (conv - 2) / 2 + 1,
        })
    }
}

/// `Qwen2AudioForConditionalGeneration`.
#[derive(Module, Debug)]
pub struct Qwen2Audio {
    audio_tower: WhisperEncoder,
    projector: Linear,
    language_model: Qwen2,
    audio_token: u32,
}

impl Qwen2Audio {
    /// Loads config.json and safetensors from a HF directory.
    pub fn load(dir: &Path, device: &Device) -> Result<(Qwen2AudioConfig, Self), Qwen2AudioError> {
        let path = dir.join("config.json");
        let config: Qwen2AudioConfig = read_json(&path)?;
        let mut store = TensorStore::from_dir(dir)?;
        let a = &config.audio_config;
        let audio_tower = WhisperEncoder::load(&mut store, "audio_tower", a, device);
        let projector = load_linear(
            &mut store,
            "multi_modal_projector.linear",
            a.d_model,
            config.text_config.hidden_size,
            true,
            device,
        );
        let language_model = Qwen2::load_parts(
            &config.text_config,
            &mut store,
            "language_model.model",
            "language_model.lm_head",
            device,
        )?;
        store.finish()?;
        Ok((
            config.clone(),
            Self {
                audio_tower,
                projector,
                language_model,
                audio_token: config.audio_token_index,
            },
        ))
    }

    /// Audio embeddings `[tokens, hidden]` of one utterance from 30 s padded features
    /// `[1, n_mels, 3000]` of which the first `valid_frames` are real audio.
    pub fn encode_audio(
        &self,
        features: Tensor<3>,
        valid_frames: usize,
    ) -> Result<Tensor<2>, Qwen2AudioError> {
        let len = AudioLengths::from_frames(valid_frames).ok_or_else(|| {
            Qwen2AudioError::Input(format!("only {valid_frames} valid mel frames"))
        })?;
        let x = self.audio_tower.embed(features)?;
        let [b, t, d] = x.dims();
        if b != 1 || len.conv > t {
            return Err(Qwen2AudioError::Input(format!(
                "batch {b} with {t} encoder positions for {} valid ones",
                len.conv
            )));
        }
        let x = self
            .audio_tower
            .layers_forward(x.slice(s![.., 0..len.conv, ..]));
        let pooled = x
            .slice(s![.., 0..2 * len.tokens, ..])
            .reshape([len.tokens, 2, d])
            .mean_dim(1)
            .reshape([1, len.tokens, d]);
        let x = self.audio_tower.finish(pooled);
        Ok(self
            .projector
            .forward(x)
            .reshape([len.tokens, self.projector.weight.dims()[1]]))
    }

    /// Decoder input embeddings of `input_ids` (with `<|AUDIO|>` already expanded to one
    /// placeholder per audio token) where the placeholders take the rows of `audio`.
    pub fn embed(&self, input_ids: &[u32], audio: Tensor<2>) -> Result<Tensor<3>, Qwen2AudioError> {
        let device = audio.device();
        let [_, h] = audio.dims();
        let t = input_ids.len();
        let text = self
            .language_model
            .embed(crate::whisper::token_tensor(input_ids, &device))
            .reshape([t, h]);
        let x = splice_placeholders(text, input_ids, self.audio_token, audio)
            .map_err(Qwen2AudioError::Input)?;
        Ok(x.reshape([1, t, h]))
    }

    /// Logits `[1, t, vocab]` of the whole prompt (audio spliced in); fills `cache` so that
    /// decoding can continue with [`Qwen2::forward`] via [`language_model`](Self::language_model).
    pub fn forward(
        &self,
        input_ids: &[u32],
        audio: Tensor<2>,
        cache: &mut Qwen2Cache,
    ) -> Result<Tensor<3>, Qwen2AudioError> {
        let x = self.embed(input_ids, audio)?;
        Ok(self.language_model.forward_embeds(x, cache)?)
    }

    /// The decoder (for continuing generation token by token).
    pub fn language_model(&self) -> &Qwen2 {
        &self.language_model
    }
}
