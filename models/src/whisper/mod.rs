//! Whisper (`WhisperForConditionalGeneration`) on burn: config, encoder, decoder with
//! KV cache, loading from a Hugging Face directory by HF tensor names.

mod config;
mod decoder;
mod encoder;
mod host_layers;

use std::path::Path;

use burn::prelude::*;

pub use config::WhisperConfig;
pub(crate) use decoder::project_rows;
pub use decoder::{DecoderCache, WhisperDecoder};
pub use encoder::{EncoderDims, WhisperEncoder};

use crate::generate::argmax;
use crate::safetensors_load::{LoadError, TensorStore};

/// Errors of the Whisper model.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// Loading config or weights failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The input does not fit the model.
    #[error("invalid Whisper input: {0}")]
    Input(String),
}

/// Encoder, decoder and config of one Whisper model.
#[derive(Debug)]
pub struct Whisper {
    /// Hyper-parameters from config.json.
    pub config: WhisperConfig,
    /// Audio encoder.
    pub encoder: WhisperEncoder,
    /// Text decoder with output projection.
    pub decoder: WhisperDecoder,
}

/// Result of greedy decoding: the new tokens and, for each, the logits it was chosen from.
pub type Greedy = crate::generate::Generated;

impl Whisper {
    /// Loads `config.json` and the safetensors checkpoint of a HF model directory.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, WhisperError> {
        Self::load_with(dir, device, false)
    }

    /// [`load`](Self::load), quantised for `--quant q8` when `q8` (see
    /// [`from_store_with`](Self::from_store_with)).
    pub fn load_with(dir: &Path, device: &Device, q8: bool) -> Result<Self, WhisperError> {
        let config = WhisperConfig::from_file(&dir.join("config.json"))?;
        let store = TensorStore::from_dir(dir)?;
        Self::from_store_with(config, store, device, q8)
    }

    /// Builds the model from an opened checkpoint; fails listing every missing,
    /// mis-shaped or unused tensor.
    pub fn from_store(
        config: WhisperConfig,
        store: TensorStore,
        device: &Device,
    ) -> Result<Self, WhisperError> {
        Self::from_store_with(config, store, device, false)
    }

    /// [`from_store`](Self::from_store), quantised for `--quant q8` when `q8`, as
    /// [`crate::quant::quantize_whisper`] would after loading, but on the CPU backend
    /// each encoder layer goes to int8 as soon as it is read, so the f32 encoder is
    /// never whole in memory (the peak RSS of `--quant q8` was that of f32).
    pub fn from_store_with(
        config: WhisperConfig,
        mut store: TensorStore,
        device: &Device,
        q8: bool,
    ) -> Result<Self, WhisperError> {
        config.validate().map_err(WhisperError::Input)?;
        let on_cpu = q8 && crate::nn::is_flex(device);
        let encoder = WhisperEncoder::load_with(
            &mut store,
            "model.encoder",
            &config.encoder_dims(),
            device,
            on_cpu,
        );
        let decoder = WhisperDecoder::load(
            &mut store,
            "model.decoder",
            "proj_out.weight",
            &config,
            device,
        );
        store.finish()?;
        let mut model = Self {
            config,
            encoder,
            decoder,
        };
        if q8 && !on_cpu {
            crate::quant::quantize_whisper(&mut model, device);
        }
        Ok(model)
    }

    /// Encoder states of log-mel features `[batch, n_mels, frames]`.
    pub fn encode(&self, features: Tensor<3>) -> Result<Tensor<3>, WhisperError> {
        self.encoder.forward(features)
    }

    /// Greedy decoding of one utterance (batch 1) after `prompt`, at most `max_new` tokens,
    /// stopping after `eos` if given. Uses the KV cache: the prompt in one pass, then one
    /// token per step.
    pub fn greedy(
        &self,
        encoder_states: Tensor<3>,
        prompt: &[u32],
        max_new: usize,
        eos: Option<u32>,
    ) -> Result<Greedy, WhisperError> {
        if encoder_states.dims()[0] != 1 {
            return Err(WhisperError::Input(
                "greedy decoding takes a batch of 1".into(),
            ));
        }
        if prompt.is_empty() {
            return Err(WhisperError::Input("empty decoder prompt".into()));
        }
        if max_new == 0 {
            return Ok(Greedy::default());
        }
        let device = encoder_states.device();
        let mut cache = self.decoder.start(encoder_states);
        let last_logits = |input: &[u32], cache: &mut DecoderCache| {
            let logits = self
                .decoder
                .forward_last(token_tensor(input, &device), cache)?;
            Ok::<_, WhisperError>(rows_of(logits)?.pop().unwrap_or_default())
        };
        let first = last_logits(prompt, &mut cache)?;
        crate::generate::generate(
            first,
            max_new,
            eos.as_slice(),
            &mut |l| argmax(l),
            &mut |t| last_logits(&[t], &mut cache),
        )
    }

    /// Vocabulary logits at the answer position (after `prompt`) for each utterance of a
    /// batch of encoder states `[batch, frames, d]`: one decoder pass, the prompt shared
    /// by all rows. This is what the `first-token` scorer reads.
    pub fn answer_logits(
        &self,
        encoder_states: Tensor<3>,
        prompt: &[u32],
    ) -> Result<Vec<Vec<f32>>, WhisperError> {
        let tokens = prompt_rows(prompt, &encoder_states)?;
        let mut cache = self.decoder.start(encoder_states);
        rows_of(self.decoder.forward_last(tokens, &mut cache)?)
    }
}

impl Whisper {
    /// Like [`answer_logits`](Self::answer_logits), but only the logits of vocabulary
    /// `rows` (in that order) for each utterance: what a `first-token` readout needs.
    pub fn answer_rows(
        &self,
        encoder_states: Tensor<3>,
        prompt: &[u32],
        rows: &[u32],
    ) -> Result<Vec<Vec<f32>>, WhisperError> {
        let tokens = prompt_rows(prompt, &encoder_states)?;
        let mut cache = self.decoder.start(encoder_states);
        rows_of(
            self.decoder
                .forward_last_rows(tokens, None, rows, &mut cache)?,
        )
    }

    /// Quantises the encoder's linear layers to int8 for the CPU kernel; returns how
    /// many were (0 off the CPU backend). The decoder stays f32: with the first-token
    /// readout it runs a few prompt positions (a small share of the time), and its
    /// rounding reaches the label logits directly (quantising it too moved Whisper
    /// base's label logits by 0.32 on a reference clip, over the 0.25 guard).
    pub fn quantize_q8(&mut self) -> usize {
        self.encoder.quantize_q8()
    }
}

/// `prompt` repeated for each utterance of `encoder_states` `[batch, frames, d]`, as a
/// `[batch, prompt.len()]` token tensor.
fn prompt_rows(prompt: &[u32], encoder_states: &Tensor<3>) -> Result<Tensor<2, Int>, WhisperError> {
    if prompt.is_empty() {
        return Err(WhisperError::Input("empty decoder prompt".into()));
    }
    let [batch, _, _] = encoder_states.dims();
    let ids: Vec<i64> = (0..batch)
        .flat_map(|_| prompt.iter().map(|&i| i64::from(i)))
        .collect();
    Ok(Tensor::from_data(
        TensorData::new(ids, [batch, prompt.len()]),
        &encoder_states.device(),
    ))
}

/// Rows of a `[batch, vocab]` tensor as vectors.
fn rows_of(logits: Tensor<2>) -> Result<Vec<Vec<f32>>, WhisperError> {
    let [_, v] = logits.dims();
    let flat: Vec<f32> = logits
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| WhisperError::Input(format!("reading logits: {e:?}")))?;
    Ok(flat.chunks(v.max(1)).map(<[f32]>::to_vec).collect())
}

/// Token ids as a `[1, n]` Int tensor.
pub fn token_tensor(ids: &[u32], device: &Device) -> Tensor<2, Int> {
    let data: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    Tensor::from_data(TensorData::new(data, [1, ids.len()]), device)
}
