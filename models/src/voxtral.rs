//! Voxtral (`VoxtralForConditionalGeneration`): Whisper encoder over 30 s chunks, ×4
//! frame stacking (`[1500, d]` → `[375, 4d]`), a GELU MLP projector without biases, and a
//! Llama/Mistral decoder. Audio embeddings replace the audio placeholder tokens in order.
//!
//! Weight names as published checkpoints (`audio_tower.*`,
//! `multi_modal_projector.linear_{1,2}.weight`, `language_model.model.*`,
//! `language_model.lm_head.weight`).

use std::path::Path;

use burn::nn::Linear;
use burn::prelude::*;
use serde::Deserialize;

use crate::nn::{gelu, load_linear, splice_placeholders};
use crate::qwen2::{Qwen2 as LlamaLike, Qwen2Cache, Qwen2Config};
use crate::qwen2_audio::Qwen2AudioError as VoxtralError;
use crate::safetensors_load::{TensorStore, read_json};
use crate::whisper::{EncoderDims, WhisperEncoder};

/// `VoxtralConfig`.
#[derive(Debug, Clone, Deserialize)]
pub struct VoxtralConfig {
    /// The audio encoder's shape (Voxtral names its fields like a text model).
    pub audio_config: EncoderDims,
    /// The decoder's config (`model_type` `llama` or `mistral`).
    pub text_config: Qwen2Config,
    /// Id of the audio placeholder token.
    #[serde(alias = "audio_token_index")]
    pub audio_token_id: u32,
    /// Projector activation; only `gelu`.
    #[serde(default = "default_act")]
    pub projector_hidden_act: String,
}

fn default_act() -> String {
    "gelu".into()
}

/// `VoxtralForConditionalGeneration`.
#[derive(Module, Debug)]
pub struct Voxtral {
    audio_tower: WhisperEncoder,
    linear_1: Linear,
    linear_2: Linear,
    language_model: LlamaLike,
    audio_token: u32,
    stack: usize,
}

impl Voxtral {
    /// Loads config.json and safetensors from a HF directory.
    pub fn load(dir: &Path, device: &Device) -> Result<(VoxtralConfig, Self), VoxtralError> {
        let path = dir.join("config.json");
        let config: VoxtralConfig = read_json(&path)?;
        let a = &config.audio_config;
        if config.projector_hidden_act != "gelu" || !a.encoder_ffn_dim.is_multiple_of(a.d_model) {
            return Err(VoxtralError::Input(format!(
                "{}: unsupported projector (act {}, intermediate {} for d {})",
                path.display(),
                config.projector_hidden_act,
                a.encoder_ffn_dim,
                a.d_model
            )));
        }
        let mut store = TensorStore::from_dir(dir)?;
        let h = config.text_config.hidden_size;
        let audio_tower = WhisperEncoder::load(&mut store, "audio_tower", a, device);
        let linear_1 = load_linear(
            &mut store,
            "multi_modal_projector.linear_1",
            a.encoder_ffn_dim,
            h,
            false,
            device,
        );
        let linear_2 = load_linear(
            &mut store,
            "multi_modal_projector.linear_2",
            h,
            h,
            false,
            device,
        );
        let language_model = LlamaLike::load_parts(
            &config.text_config,
            &mut store,
            "language_model.model",
            "language_model.lm_head",
            device,
        )?;
        store.finish()?;
        let model = Self {
            audio_tower,
            linear_1,
            linear_2,
            language_model,
            audio_token: config.audio_token_id,
            stack: a.encoder_ffn_dim / a.d_model,
        };
        Ok((config, model))
    }

    /// Audio embeddings `[chunks * 1500 / 4, hidden]` of 30 s padded feature chunks
    /// `[chunks, n_mels, 3000]`.
    pub fn encode_audio(&self, features: Tensor<3>) -> Result<Tensor<2>, VoxtralError> {
        let x = self.audio_tower.forward(features)?;
        let [b, t, d] = x.dims();
        if !(b * t).is_multiple_of(self.stack) {
            return Err(VoxtralError::Input(format!(
                "{} encoder frames are not a multiple of {}",
                b * t,
                self.stack
            )));
        }
        let stacked = x.reshape([b * t / self.stack, d * self.stack]);
        Ok(self.linear_2.forward(gelu(self.linear_1.forward(stacked))))
    }

    /// Logits `[1, t, vocab]` of the prompt with audio spliced in; fills `cache`.
    pub fn forward(
        &self,
        input_ids: &[u32],
        audio: Tensor<2>,
        cache: &mut Qwen2Cache,
    ) -> Result<Tensor<3>, VoxtralError> {
        let device = audio.device();
        let [_, h] = audio.dims();
        let t = input_ids.len();
        let text = self
            .language_model
            .embed(crate::whisper::token_tensor(input_ids, &device))
            .reshape([t, h]);
        let x = splice_placeholders(text, input_ids, self.audio_token, audio)
            .map_err(VoxtralError::Input)?;
        Ok(self
            .language_model
            .forward_embeds(x.reshape([1, t, h]), cache)?)
    }

    /// The decoder (for continuing generation token by token).
    pub fn language_model(&self) -> &LlamaLike {
        &self.language_model
    }
}
