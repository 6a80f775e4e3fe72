//! Whisper audio encoder: two GELU convolutions (the second with stride 2), learned
//! (sinusoid-initialised) positions, pre-norm transformer layers, final LayerNorm.
//!
//! Unlike transformers, which insists on exactly `2 * max_source_positions` (3000) input
//! frames, any length up to that is accepted: positions are sliced to the output length.
//! With 3000 padded frames the output equals the reference; shorter inputs are the
//! faster, unpadded mode the scorers may use where fidelity to Whisper's training allows.

use burn::module::Param;
use burn::nn::LayerNorm;
use burn::nn::conv::Conv1d;
use burn::prelude::*;

use super::WhisperError;
use super::host_layers::{self, HostLayer};
use crate::nn::{GeluMlp, MultiHeadAttention, gelu, is_flex, load_conv1d, load_layer_norm};
use crate::safetensors_load::TensorStore;
use serde::{Deserialize, Serialize};

/// Shape of a Whisper-style audio encoder. Field names follow HF, so this deserialises
/// from Qwen2-Audio's `audio_config` and (through aliases) Voxtral's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderDims {
    /// Input mel bins.
    pub num_mel_bins: usize,
    /// Hidden size (`hidden_size` in Voxtral's encoder config).
    #[serde(alias = "hidden_size")]
    pub d_model: usize,
    /// Transformer layers (`num_hidden_layers` in Voxtral's).
    #[serde(alias = "num_hidden_layers")]
    pub encoder_layers: usize,
    /// Attention heads (`num_attention_heads` in Voxtral's).
    #[serde(alias = "num_attention_heads")]
    pub encoder_attention_heads: usize,
    /// MLP hidden size (`intermediate_size` in Voxtral's).
    #[serde(alias = "intermediate_size")]
    pub encoder_ffn_dim: usize,
    /// Positions after the stride-2 convolution (1500 for 30 s).
    #[serde(default = "default_source_positions")]
    pub max_source_positions: usize,
}

fn default_source_positions() -> usize {
    1500
}

/// One pre-norm encoder layer.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    self_attn_layer_norm: LayerNorm,
    self_attn: MultiHeadAttention,
    final_layer_norm: LayerNorm,
    mlp: GeluMlp,
}

impl EncoderLayer {
    fn load(store: &mut TensorStore, prefix: &str, c: &EncoderDims, device: &Device) -> Self {
        let d = c.d_model;
        Self {
            self_attn_layer_norm: load_layer_norm(
                store,
                &format!("{prefix}.self_attn_layer_norm"),
                d,
                device,
            ),
            self_attn: MultiHeadAttention::load(
                store,
                &format!("{prefix}.self_attn"),
                d,
                c.encoder_attention_heads,
                false,
                device,
            ),
            final_layer_norm: load_layer_norm(
                store,
                &format!("{prefix}.final_layer_norm"),
                d,
                device,
            ),
            mlp: GeluMlp::load(store, &format!("{prefix}."), d, c.encoder_ffn_dim, device),
        }
    }

    /// Quantises the layer's six linear layers (see [`crate::nn::Dense::quantize_q8`]);
    /// returns how many were.
    fn quantize_q8(&mut self) -> usize {
        let [a, b, c, d] = self.self_attn.projections_mut();
        let [e, f] = self.mlp.projections_mut();
        [a, b, c, d, e, f]
            .into_iter()
            .map(|dense| dense.quantize_q8())
            .filter(|&done| done)
            .count()
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.self_attn.forward(self.self_attn_layer_norm.forward(x));
        x.clone() + self.mlp.forward(self.final_layer_norm.forward(x))
    }

    /// The layer on host buffers, once all its projections are quantised for the CPU.
    fn host(&self) -> Option<HostLayer<'_>> {
        HostLayer::new(
            &self.self_attn_layer_norm,
            self.self_attn.projections(),
            self.self_attn.n_heads,
            &self.final_layer_norm,
            self.mlp.projections(),
        )
    }
}

/// `WhisperEncoder` (HF prefix `model.encoder`).
#[derive(Module, Debug)]
pub struct WhisperEncoder {
    conv1: Conv1d,
    conv2: Conv1d,
    embed_positions: Param<Tensor<2>>,
    layers: Vec<EncoderLayer>,
    layer_norm: LayerNorm,
    n_mels: usize,
}

impl WhisperEncoder {
    /// Loads the encoder from HF names under `prefix` (e.g. `model.encoder`).
    pub fn load(store: &mut TensorStore, prefix: &str, c: &EncoderDims, device: &Device) -> Self {
        Self::load_with(store, prefix, c, device, false)
    }

    /// [`load`](Self::load), with each transformer layer quantised to int8 as soon as it
    /// is read when `q8` (see [`quantize_q8`](Self::quantize_q8)): only one layer's f32
    /// weights are ever in memory, so `--quant q8` never holds the f32 encoder (Whisper
    /// base: 76 MB of f32, 21 MB in int8).
    pub fn load_with(
        store: &mut TensorStore,
        prefix: &str,
        c: &EncoderDims,
        device: &Device,
        q8: bool,
    ) -> Self {
        let d = c.d_model;
        Self {
            conv1: load_conv1d(
                store,
                &format!("{prefix}.conv1"),
                c.num_mel_bins,
                d,
                3,
                1,
                device,
            ),
            conv2: load_conv1d(store, &format!("{prefix}.conv2"), d, d, 3, 2, device),
            embed_positions: Param::from_tensor(store.take(
                &format!("{prefix}.embed_positions.weight"),
                [c.max_source_positions, d],
                device,
            )),
            layers: (0..c.encoder_layers)
                .map(|i| {
                    let mut layer =
                        EncoderLayer::load(store, &format!("{prefix}.layers.{i}"), c, device);
                    if q8 {
                        layer.quantize_q8();
                    }
                    layer
                })
                .collect(),
            layer_norm: load_layer_norm(store, &format!("{prefix}.layer_norm"), d, device),
            n_mels: c.num_mel_bins,
        }
    }

    /// Encodes log-mel features `[batch, n_mels, frames]` (frames ≤ 2 × positions) into
    /// `[batch, ceil(frames / 2), d_model]`.
    pub fn forward(&self, features: Tensor<3>) -> Result<Tensor<3>, WhisperError> {
        let x = self.embed(features)?;
        Ok(self.finish(self.layers_forward(x)))
    }

    /// Convolutions, GELUs and positions: `[batch, n_mels, frames]` →
    /// `[batch, ceil(frames / 2), d_model]`, before the transformer layers.
    pub fn embed(&self, features: Tensor<3>) -> Result<Tensor<3>, WhisperError> {
        let [_, mels, frames] = features.dims();
        let [max_pos, _] = self.embed_positions.dims();
        if mels != self.n_mels {
            return Err(WhisperError::Input(format!(
                "features have {mels} mel bins, the model expects {}",
                self.n_mels
            )));
        }
        if frames == 0 || frames > 2 * max_pos {
            return Err(WhisperError::Input(format!(
                "features have {frames} frames, the encoder accepts 1..={}",
                2 * max_pos
            )));
        }
        let x = gelu(self.conv1.forward(features));
        let x = gelu(self.conv2.forward(x)).swap_dims(1, 2); // [b, t, d]
        let t = x.dims()[1];
        let pos = self
            .embed_positions
            .val()
            .slice(s![0..t, ..])
            .unsqueeze_dim::<3>(0);
        Ok(x + pos)
    }

    /// Like [`forward`](Self::forward), but also returns the hidden states after the
    /// first `tap` transformer layers for each `tap` of `taps` (`0` = the embedded input,
    /// before any layer), in the order given. Paralinguistic cues such as emotion are
    /// strongest mid-stack, so the default emotion adapter reads intermediate layers
    /// besides the final states.
    pub fn forward_with_taps(
        &self,
        features: Tensor<3>,
        taps: &[usize],
    ) -> Result<(Tensor<3>, Vec<Tensor<3>>), WhisperError> {
        if let Some(&bad) = taps.iter().find(|&&t| t > self.layers.len()) {
            return Err(WhisperError::Input(format!(
                "cannot tap encoder layer {bad}: the encoder has {} layers",
                self.layers.len()
            )));
        }
        let x = self.embed(features)?;
        let (x, tapped) = self.run_layers(x, taps);
        Ok((self.finish(x), tapped))
    }

    /// The transformer layers over `x`, with the states after `tap` layers for each of
    /// `taps` (all within `0..=layers`), in the order given. Once the layers are
    /// quantised on the CPU they run on host buffers ([`host_layers`]); otherwise
    /// through burn.
    fn run_layers(&self, x: Tensor<3>, taps: &[usize]) -> (Tensor<3>, Vec<Tensor<3>>) {
        let mut tapped: Vec<Option<Tensor<3>>> = vec![None; taps.len()];
        let mut keep = |done: usize, x: &dyn Fn() -> Tensor<3>| {
            for (slot, _) in tapped.iter_mut().zip(taps).filter(|(_, t)| **t == done) {
                *slot = Some(x());
            }
        };
        let host: Option<Vec<HostLayer>> =
            if is_flex(&x.device()) && x.dtype() == burn::tensor::DType::F32 {
                self.layers.iter().map(EncoderLayer::host).collect()
            } else {
                None
            };
        let x = match host {
            Some(layers) => {
                let (device, dims) = (x.device(), x.dims());
                let [batch, t, _] = dims;
                let mut values = match x.into_data().try_into_vec::<f32>() {
                    Ok(v) => v,
                    Err(e) => unreachable!("a flex f32 tensor reads as f32: {e:?}"),
                };
                let tensor =
                    |v: Vec<f32>| Tensor::<3>::from_data(TensorData::new(v, dims), &device);
                host_layers::run(&layers, &mut values, batch, t, |done, x| {
                    keep(done, &|| tensor(x.to_vec()))
                });
                tensor(values)
            }
            None => {
                let mut x = x;
                keep(0, &|| x.clone());
                for (i, layer) in self.layers.iter().enumerate() {
                    x = layer.forward(x);
                    keep(i + 1, &|| x.clone());
                }
                x
            }
        };
        let tapped = tapped
            .into_iter()
            .map(|t| t.expect("every tap is within 0..=layers, checked above"))
            .collect();
        (x, tapped)
    }

    /// Quantises every linear layer to int8 for the CPU kernel (see
    /// [`crate::nn::Dense::quantize_q8`]); returns how many were.
    pub fn quantize_q8(&mut self) -> usize {
        self.layers.iter_mut().map(EncoderLayer::quantize_q8).sum()
    }

    /// How many of the linear layers run on the int8 kernel.
    pub fn q8_matrices(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| {
                l.self_attn
                    .projections()
                    .into_iter()
                    .chain(l.mlp.projections())
            })
            .filter(|dense| dense.is_q8())
            .count()
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The transformer layers (bidirectional attention over all given positions).
    pub fn layers_forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.run_layers(x, &[]).0
    }

    /// The final LayerNorm.
    pub fn finish(&self, x: Tensor<3>) -> Tensor<3> {
        self.layer_norm.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Whisper;
    use super::*;

    fn values(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().expect("f32")
    }

    /// Once quantised, the layers run on host buffers; their states (every tap and the
    /// output, two sequences, a length that is not a multiple of any block) equal those
    /// of the same int8 layers run through burn's ops, up to the order of f32 additions
    /// (which can move an activation across an int8 rounding boundary: hence a bound
    /// relative to the states' scale, not 1e-6), on every instruction set's host kernels.
    #[test]
    fn host_layers_equal_the_tensor_path() {
        let device = Device::flex();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-whisper");
        let mut encoder = Whisper::load(&dir, &device).expect("tiny whisper").encoder;
        assert_eq!(encoder.quantize_q8(), 12);
        let (batch, mels, frames) = (2, encoder.n_mels, 75);
        let features: Vec<f32> = (0..batch * mels * frames)
            .map(|i| (i as f32 * 0.013).sin() * 1.5 - 0.3)
            .collect();
        let features =
            Tensor::<3>::from_data(TensorData::new(features, [batch, mels, frames]), &device);
        assert!(encoder.layers.iter().all(|l| l.host().is_some()));

        let taps = [2, 0, 1];
        let features_again = features.clone();
        let (host_out, host_taps) = encoder
            .forward_with_taps(features.clone(), &taps)
            .expect("host path");
        let mut x = encoder.embed(features).expect("embed");
        let mut tensor_states = vec![x.clone()];
        for layer in &encoder.layers {
            x = layer.forward(x);
            tensor_states.push(x.clone());
        }
        let tensor_out = encoder.finish(x);

        let check = |what: &str, got: Tensor<3>, want: Tensor<3>| {
            assert_eq!(got.dims(), want.dims(), "{what}");
            let (got, want) = (values(got), values(want));
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let diff = got
                .iter()
                .zip(&want)
                .fold(0.0f32, |m, (g, w)| m.max((g - w).abs()));
            println!("{what}: max |Δ| {diff:.2e}, scale {scale:.2}");
            assert!(
                diff <= 1e-4 * scale.max(1.0),
                "{what}: max |Δ| {diff} (scale {scale})"
            );
        };
        for (tap, got) in taps.iter().zip(host_taps) {
            check(&format!("tap {tap}"), got, tensor_states[*tap].clone());
        }
        check("output", host_out, tensor_out);

        // Every instruction set's host kernels give the same states (the int8 sums are
        // exact on every path; softmax and GELU agree within 1e-6).
        let layers: Vec<HostLayer> = encoder
            .layers
            .iter()
            .filter_map(EncoderLayer::host)
            .collect();
        let embedded = encoder.embed(features_again).expect("embed");
        let dims = embedded.dims();
        let start = values(embedded);
        let want = tensor_states.last().expect("layers ran").clone();
        for isa in crate::kernels::Isa::available() {
            let mut x = start.clone();
            host_layers::run_with(&layers, &mut x, batch, dims[1], isa, |_, _| {});
            let got = Tensor::<3>::from_data(TensorData::new(x, dims), &device);
            check(&format!("{isa:?} after every layer"), got, want.clone());
        }
    }
}
