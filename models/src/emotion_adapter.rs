//! Whisper taught to answer with an emotion word: emomon's default model.
//!
//! The base Whisper weights stay untouched. A small trained addition, the *adapter*
//! (`models/default/`, trained by `scripts/default_model/train.py`), turns the decoder's
//! first position into an emotion question: a *read-out* of intermediate encoder layers'
//! hidden states gives a vector that is added to the input embedding of
//! `<|startoftranscript|>`. Two read-outs exist (`scripts/default_model/readout.py`):
//! `pooled` — mean and (unbiased) standard deviation over frames of fixed layers, one
//! linear map — and `asp` — every layer standardised and mixed by learned softmax
//! weights, attentive statistics pooling over frames, a linear map or a small MLP. The frozen decoder runs that single position, attending to
//! the final encoder states as usual, and the logits of the label words' first tokens
//! (`" neutral"`, `" happy"`, …) through Whisper's own vocabulary projection are read by
//! the ordinary `first-token` scorer. Why an intermediate layer: emotion is carried
//! mid-stack and largely lost by the final layer (docs/default-model.md measures +0.17
//! accuracy on EmoDB for layer 3 over the final states).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use serde::Deserialize;

use crate::nn::transposed;
use crate::scorer::{FirstTokenScorer, Form, LabelScores, ReadoutError, Verbaliser};
use crate::whisper::{WhisperError, token_tensor};
use crate::whisper_runner::{StageTimes, WhisperRunner, WhisperRunnerError};

/// The adapter format this code reads.
pub const ADAPTER_FORMAT: &str = "emomon-whisper-emotion-adapter/1";

/// Errors of adapter loading.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// adapter.json is unreadable or malformed.
    #[error("{what}: {message}")]
    Config {
        /// File or source described.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// adapter.safetensors lacks a tensor or has the wrong shape or dtype.
    #[error("{what}: tensor `{name}`: {message}")]
    Tensor {
        /// File or source described.
        what: String,
        /// Tensor name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The adapter does not fit the base model it is applied to.
    #[error("the emotion adapter does not fit the base model at {base}: {message}")]
    Mismatch {
        /// Base model directory.
        base: String,
        /// What differs.
        message: String,
    },
}

/// `adapter.json`: what the trained addition expects and how its outputs are read.
#[derive(Debug, Clone, Deserialize)]
pub struct AdapterConfig {
    /// Must equal [`ADAPTER_FORMAT`].
    pub format: String,
    /// The base model it was trained on.
    pub base: AdapterBase,
    /// Decoder prompt tokens (the adapter's vector is added to the last one).
    pub prompt: Vec<String>,
    /// Encoder layers whose pooled states condition the answer (0 = before layer 1).
    pub cond_layers: Vec<usize>,
    /// Label names, in the order of [`label_tokens`](Self::label_tokens).
    pub labels: Vec<String>,
    /// First token id of `" <label>"` for each label, as trained.
    pub label_tokens: Vec<u32>,
    /// Softmax temperature fitted on out-of-fold validation logits.
    pub temperature: f32,
    /// Temperatures for scoring over exactly one training dataset's labels, fitted on
    /// that dataset's out-of-fold logits: one temperature cannot calibrate all of them
    /// (URDU's talk shows come out over-confident where EmoDB's studio speech comes out
    /// under-confident). Absent in older adapters.
    #[serde(default)]
    pub label_set_temperatures: Vec<LabelSetTemperature>,
    /// Which labels each training dataset has (documentation of the training data).
    #[serde(default)]
    pub dataset_labels: BTreeMap<String, Vec<String>>,
    /// Silence trimming the training clips had; applied before every utterance so that
    /// pooled statistics see what training saw. `None`: the whole utterance.
    #[serde(default)]
    pub trim: Option<TrimConfig>,
    /// How the encoder states become the shift; absent = `pooled` (the first format).
    #[serde(default)]
    pub readout: Option<ReadoutConfig>,
}

/// One entry of `adapter.json`'s `label_set_temperatures`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LabelSetTemperature {
    /// The training dataset it was fitted on (documentation).
    pub dataset: String,
    /// The label set, in any order.
    pub labels: Vec<String>,
    /// The temperature for scoring over exactly these labels.
    pub temperature: f32,
}

impl AdapterConfig {
    /// The temperature for scoring over `labels`: the label set's own when the adapter
    /// has one for exactly these labels (in any order), otherwise the shipped one.
    pub fn temperature_for(&self, labels: &[String]) -> f32 {
        self.label_set_temperature(labels)
            .unwrap_or(self.temperature)
    }

    /// The temperature fitted for exactly the label set `labels`, if any.
    pub fn label_set_temperature(&self, labels: &[String]) -> Option<f32> {
        let asked: BTreeSet<&str> = labels.iter().map(String::as_str).collect();
        self.label_set_temperatures
            .iter()
            .find(|set| {
                set.labels.len() == labels.len()
                    && set
                        .labels
                        .iter()
                        .map(String::as_str)
                        .collect::<BTreeSet<_>>()
                        == asked
            })
            .map(|set| set.temperature)
    }

    /// Checks the label sets name known labels, once each, at a positive temperature.
    fn check_label_sets(&self) -> Result<(), String> {
        let mut seen: Vec<BTreeSet<&str>> = Vec::new();
        for set in &self.label_set_temperatures {
            let labels: BTreeSet<&str> = set.labels.iter().map(String::as_str).collect();
            if let Some(unknown) = set.labels.iter().find(|l| !self.labels.contains(l)) {
                return Err(format!(
                    "label_set_temperatures ({}): `{unknown}` is not one of the labels",
                    set.dataset
                ));
            }
            if labels.len() != set.labels.len() || labels.is_empty() {
                return Err(format!(
                    "label_set_temperatures ({}): the labels must be distinct and not empty",
                    set.dataset
                ));
            }
            if !(set.temperature.is_finite() && set.temperature > 0.0) {
                return Err(format!(
                    "label_set_temperatures ({}): temperature must be > 0, got {}",
                    set.dataset, set.temperature
                ));
            }
            if seen.contains(&labels) {
                return Err(format!(
                    "label_set_temperatures ({}): that label set appears twice",
                    set.dataset
                ));
            }
            seen.push(labels);
        }
        Ok(())
    }
}

/// `adapter.json`'s `readout` block.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadoutConfig {
    /// `pooled` or `asp`.
    pub kind: String,
    /// `asp`: hidden width of the frame-attention layer.
    #[serde(default)]
    pub att_hidden: usize,
    /// `asp`: hidden width of the MLP head, 0 for a linear head.
    #[serde(default)]
    pub mlp_hidden: usize,
}

/// Energy-based trimming of leading and trailing silence, exactly as
/// `scripts/default_model/encode_states.py` did to the training clips: 10 ms frames
/// (160 samples) whose mean power is more than `db` below the loudest frame are cut
/// from both ends, keeping `margin_s` on each side.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct TrimConfig {
    /// How far below the loudest frame a frame counts as silence, dB.
    pub db: f32,
    /// Audio kept before the first and after the last loud frame, seconds.
    pub margin_s: f32,
}

impl TrimConfig {
    /// The part of `samples` between the first and last loud frame, with margins.
    pub fn apply<'a>(&self, samples: &'a [f32]) -> &'a [f32] {
        const FRAME: usize = 160;
        let n = samples.len() / FRAME;
        if self.db <= 0.0 || n < 3 {
            return samples;
        }
        let power: Vec<f32> = samples[..n * FRAME]
            .chunks_exact(FRAME)
            .map(|f| 10.0 * (f.iter().map(|x| x * x).sum::<f32>() / FRAME as f32 + 1e-12).log10())
            .collect();
        let loudest = power.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let threshold = loudest - self.db;
        let (Some(first), Some(last)) = (
            power.iter().position(|&e| e > threshold),
            power.iter().rposition(|&e| e > threshold),
        ) else {
            return samples;
        };
        let margin = (self.margin_s * 16_000.0) as usize;
        let start = (first * FRAME).saturating_sub(margin);
        let end = ((last + 1) * FRAME + margin).min(samples.len());
        &samples[start..end]
    }
}

/// The base model an adapter belongs to.
#[derive(Debug, Clone, Deserialize)]
pub struct AdapterBase {
    /// Human-readable name (`whisper-base`).
    pub name: String,
    /// Hidden width of the base model.
    pub d_model: usize,
    /// Encoder layers of the base model.
    pub encoder_layers: usize,
}

/// A loaded adapter: its config and read-out.
#[derive(Debug, Clone)]
pub struct EmotionAdapter {
    /// The configuration.
    pub config: AdapterConfig,
    readout: Readout,
}

/// The trained read-out from encoder layer states to the `<|startoftranscript|>` shift.
#[derive(Debug, Clone)]
enum Readout {
    /// `shift = W·pooled + b` over mean+std of the `cond_layers` (the training-set
    /// standardisation is folded into `W` `[d, 2·d·layers]` and `b` `[d]`).
    Pooled { weight: Vec<f32>, bias: Vec<f32> },
    /// Layer mix, attentive statistics pooling and a linear or MLP head.
    Asp(Box<AspReadout>),
}

/// The `asp` read-out (see `readout.py`'s `LayerASP` and adapter.json's `readout.math`):
/// `h = Σ_l w_l (x_l − μ_l) / σ_l` per frame, frame weights `a = softmax_t(v · tanh(A h_t + c))`,
/// `z = [Σ a h, √max(Σ a h² − (Σ a h)², 1e-6)]`, optionally `z = gelu(H z + e)`, then
/// `shift = O z + o`. The mix and standardisation are folded into `coef = w_l / σ_l` and
/// `offset = Σ_l w_l μ_l / σ_l` at load, as the training's own code computes them.
#[derive(Debug, Clone)]
struct AspReadout {
    /// `[layers, d]`.
    coef: Vec<f32>,
    /// `[d]`.
    offset: Vec<f32>,
    /// `att.weight`ᵀ `[d, att_hidden]`, `att.bias` `[att_hidden]`, `att.v` `[att_hidden]`.
    att_t: Vec<f32>,
    att_b: Vec<f32>,
    att_v: Vec<f32>,
    /// `hidden.weight`ᵀ `[2d, mlp]` and `hidden.bias`, when the head is an MLP.
    hidden: Option<(Vec<f32>, Vec<f32>)>,
    /// `out.weight`ᵀ `[in, d]`, `out.bias` `[d]`.
    out_t: Vec<f32>,
    out_b: Vec<f32>,
}

impl EmotionAdapter {
    /// Parses an adapter from the bytes of `adapter.json` and `adapter.safetensors`;
    /// `what` names their origin in errors.
    pub fn from_bytes(json: &[u8], tensors: &[u8], what: &str) -> Result<Self, AdapterError> {
        let config: AdapterConfig =
            serde_json::from_slice(json).map_err(|e| AdapterError::Config {
                what: format!("{what}/adapter.json"),
                message: e.to_string(),
            })?;
        let bad = |message: String| AdapterError::Config {
            what: format!("{what}/adapter.json"),
            message,
        };
        if config.format != ADAPTER_FORMAT {
            return Err(bad(format!(
                "format {:?}, this emomon reads {ADAPTER_FORMAT:?}",
                config.format
            )));
        }
        if config.labels.is_empty() || config.labels.len() != config.label_tokens.len() {
            return Err(bad(format!(
                "{} labels but {} label tokens",
                config.labels.len(),
                config.label_tokens.len()
            )));
        }
        if config.cond_layers.is_empty()
            || config
                .cond_layers
                .iter()
                .any(|&l| l > config.base.encoder_layers)
        {
            return Err(bad(format!(
                "cond_layers {:?} must be non-empty and within 0..={}",
                config.cond_layers, config.base.encoder_layers
            )));
        }
        if !(config.temperature.is_finite() && config.temperature > 0.0) {
            return Err(bad(format!(
                "temperature must be > 0, got {}",
                config.temperature
            )));
        }
        config.check_label_sets().map_err(bad)?;
        if config.prompt.is_empty() {
            return Err(bad("empty prompt".into()));
        }
        let d = config.base.d_model;
        let what_st = format!("{what}/adapter.safetensors");
        let st =
            safetensors::SafeTensors::deserialize(tensors).map_err(|e| AdapterError::Tensor {
                what: what_st.clone(),
                name: "*".into(),
                message: e.to_string(),
            })?;
        let mut reader = TensorReader {
            st: &st,
            what: &what_st,
            used: Vec::new(),
        };
        let kind = config
            .readout
            .as_ref()
            .map_or("pooled", |r| r.kind.as_str());
        let readout = match kind {
            "pooled" => Readout::Pooled {
                weight: reader.f32("cond.weight", &[d, 2 * d * config.cond_layers.len()])?,
                bias: reader.f32("cond.bias", &[d])?,
            },
            "asp" => {
                let rc = config
                    .readout
                    .as_ref()
                    .expect("kind asp comes from a readout block");
                let layers = config.cond_layers.len();
                if config.cond_layers != (0..layers).collect::<Vec<_>>() {
                    return Err(bad(format!(
                        "the asp read-out mixes layers 0..n in order; cond_layers is {:?}",
                        config.cond_layers
                    )));
                }
                if rc.att_hidden == 0 {
                    return Err(bad("readout.att_hidden must be > 0".into()));
                }
                Readout::Asp(Box::new(AspReadout::read(
                    &mut reader,
                    layers,
                    d,
                    rc.att_hidden,
                    rc.mlp_hidden,
                )?))
            }
            other => {
                return Err(bad(format!(
                    "readout kind {other:?} is unknown; this emomon reads `pooled` and `asp`"
                )));
            }
        };
        let unused: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| !reader.used.iter().any(|u| u == n))
            .map(str::to_string)
            .collect();
        if !unused.is_empty() {
            return Err(AdapterError::Tensor {
                what: what_st,
                name: unused.join(", "),
                message: "unexpected tensor(s); is this adapter for a newer emomon?".into(),
            });
        }
        Ok(Self { config, readout })
    }

    /// Reads `adapter.json` and `adapter.safetensors` from a directory.
    pub fn from_dir(dir: &Path) -> Result<Self, AdapterError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| AdapterError::Config {
                what: path.display().to_string(),
                message: e.to_string(),
            })
        };
        Self::from_bytes(
            &read("adapter.json")?,
            &read("adapter.safetensors")?,
            &dir.display().to_string(),
        )
    }

    /// Length of the pooled feature vector the `pooled` map reads.
    fn input_len(&self) -> usize {
        2 * self.config.base.d_model * self.config.cond_layers.len()
    }

    /// `W·pooled + b` as a `[1, 1, d]` embedding shift (`pooled` read-out).
    fn shift(&self, weight: &[f32], bias: &[f32], pooled: &[f32], device: &Device) -> Tensor<3> {
        let d = self.config.base.d_model;
        let n = self.input_len();
        let w = Tensor::<2>::from_data(TensorData::new(weight.to_vec(), [d, n]), device);
        let p = Tensor::<2>::from_data(TensorData::new(pooled.to_vec(), [n, 1]), device);
        let b = Tensor::<2>::from_data(TensorData::new(bias.to_vec(), [d, 1]), device);
        (w.matmul(p) + b).reshape([1, 1, d])
    }

    /// The `[1, 1, d]` shift of `<|startoftranscript|>` from the encoder states of the
    /// `cond_layers` (`[1, frames, d]` each, in that order).
    fn shift_from_taps(
        &self,
        taps: Vec<Tensor<3>>,
        device: &Device,
    ) -> Result<Tensor<3>, WhisperError> {
        match &self.readout {
            Readout::Pooled { weight, bias } => {
                let mut pooled = Vec::with_capacity(self.input_len());
                for tap in taps {
                    pooled.extend(mean_std(tap)?);
                }
                Ok(self.shift(weight, bias, &pooled, device))
            }
            Readout::Asp(asp) => Ok(asp.shift(taps, device)),
        }
    }
}

/// Reads named f32 tensors of a safetensors file, remembering which were read.
struct TensorReader<'a> {
    st: &'a safetensors::SafeTensors<'a>,
    what: &'a str,
    used: Vec<&'static str>,
}

impl TensorReader<'_> {
    fn f32(&mut self, name: &'static str, shape: &[usize]) -> Result<Vec<f32>, AdapterError> {
        self.used.push(name);
        read_f32(self.st, name, shape, self.what)
    }

    fn err(&self, name: &str, message: String) -> AdapterError {
        AdapterError::Tensor {
            what: self.what.into(),
            name: name.into(),
            message,
        }
    }
}

impl AspReadout {
    fn read(
        r: &mut TensorReader<'_>,
        layers: usize,
        d: usize,
        att: usize,
        mlp: usize,
    ) -> Result<Self, AdapterError> {
        let mix = r.f32("mix.weight", &[layers])?;
        let mean = r.f32("norm.mean", &[layers, d])?;
        let std = r.f32("norm.std", &[layers, d])?;
        if std.iter().any(|&s| s <= 0.0) {
            return Err(r.err("norm.std", "must be > 0 everywhere".into()));
        }
        let coef: Vec<f32> = (0..layers * d).map(|i| mix[i / d] / std[i]).collect();
        let offset = (0..d)
            .map(|c| (0..layers).map(|l| coef[l * d + c] * mean[l * d + c]).sum())
            .collect();
        let att_w = r.f32("att.weight", &[att, d])?;
        let att_b = r.f32("att.bias", &[att])?;
        let att_v = r.f32("att.v", &[att])?;
        let (hidden, head_in) = if mlp > 0 {
            let w = r.f32("hidden.weight", &[mlp, 2 * d])?;
            let b = r.f32("hidden.bias", &[mlp])?;
            (Some((transposed(&w, mlp, 2 * d), b)), mlp)
        } else {
            (None, 2 * d)
        };
        let out_w = r.f32("out.weight", &[d, head_in])?;
        Ok(Self {
            coef,
            offset,
            att_t: transposed(&att_w, att, d),
            att_b,
            att_v,
            hidden,
            out_t: transposed(&out_w, d, head_in),
            out_b: r.f32("out.bias", &[d])?,
        })
    }

    /// The shift from every layer's states (`[1, frames, d]`, layer 0 first).
    fn shift(&self, taps: Vec<Tensor<3>>, device: &Device) -> Tensor<3> {
        let d = self.offset.len();
        let row =
            |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, v.len()]), device);
        let mat = |v: &[f32], rows: usize| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), [rows, v.len() / rows]), device)
        };
        let mut h = -row(&self.offset);
        for (l, tap) in taps.into_iter().enumerate() {
            let t = tap.dims()[1];
            h = tap.reshape([t, d]) * row(&self.coef[l * d..(l + 1) * d]) + h;
        }
        let e = (h.clone().matmul(mat(&self.att_t, d)) + row(&self.att_b))
            .tanh()
            .matmul(mat(&self.att_v, self.att_v.len()));
        let a = burn::tensor::activation::softmax(e, 0);
        let mean = (a.clone() * h.clone()).sum_dim(0);
        let square = (a * h.clone() * h).sum_dim(0);
        let std = (square - mean.clone() * mean.clone())
            .clamp_min(1e-6)
            .sqrt();
        let mut z = Tensor::cat(vec![mean, std], 1);
        if let Some((w, b)) = &self.hidden {
            z = burn::tensor::activation::gelu(z.matmul(mat(w, 2 * d)) + row(b));
        }
        let rows = self.out_t.len() / d;
        (z.matmul(mat(&self.out_t, rows)) + row(&self.out_b)).reshape([1, 1, d])
    }
}

/// Reads an f32 tensor of exactly `shape`.
fn read_f32(
    st: &safetensors::SafeTensors<'_>,
    name: &str,
    shape: &[usize],
    what: &str,
) -> Result<Vec<f32>, AdapterError> {
    let err = |message: String| AdapterError::Tensor {
        what: what.into(),
        name: name.into(),
        message,
    };
    let view = st.tensor(name).map_err(|_| err("missing".into()))?;
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(err(format!("dtype {:?}, expected F32", view.dtype())));
    }
    if view.shape() != shape {
        return Err(err(format!("shape {:?}, expected {shape:?}", view.shape())));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(err("contains NaN or infinite values".into()));
    }
    Ok(values)
}

/// Mean and unbiased standard deviation over frames of `[1, frames, d]`, as
/// `[mean…, std…]` (`torch.std`'s default, which the adapter was trained with).
fn mean_std(states: Tensor<3>) -> Result<Vec<f32>, WhisperError> {
    let [_, t, d] = states.dims();
    if t < 2 {
        return Err(WhisperError::Input(format!(
            "an utterance of {t} encoder frame(s) is too short to pool (at least 2, i.e. 40 ms)"
        )));
    }
    let x = states.reshape([t, d]);
    let mean = x.clone().mean_dim(0);
    let var = (x - mean.clone()).powi_scalar(2).sum_dim(0) / (t as f32 - 1.0);
    let mut out = read_vec(mean)?;
    out.extend(read_vec(var.sqrt())?);
    Ok(out)
}

fn read_vec(t: Tensor<2>) -> Result<Vec<f32>, WhisperError> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| WhisperError::Input(format!("reading a tensor: {e:?}")))
}

/// Whisper plus the emotion adapter: 16 kHz utterances in, label distributions out.
/// The Whisper stages (front end, encoder, decoder) are [`WhisperRunner`]'s, run
/// unpadded; the adapter adds its read-out between encoder and decoder.
#[derive(Debug)]
pub struct EmotionWhisper {
    stages: WhisperRunner,
    adapter: EmotionAdapter,
    prompt: Vec<u32>,
}

impl EmotionWhisper {
    /// Loads the base model from a HF Whisper directory and checks that `adapter` fits
    /// it: width, depth and the label tokens it was trained to read.
    pub fn load(
        base: &Path,
        adapter: EmotionAdapter,
        device: &Device,
    ) -> Result<Self, WhisperRunnerError> {
        Self::load_with(base, adapter, device, false)
    }

    /// [`load`](Self::load) with the base model quantised for `--quant q8` while it is
    /// read when `q8` ([`WhisperRunner::load_with`]; the adapter stays f32): the same
    /// model as `load` then [`quantize`](Self::quantize), without the f32 peak.
    pub fn load_with(
        base: &Path,
        adapter: EmotionAdapter,
        device: &Device,
        q8: bool,
    ) -> Result<Self, WhisperRunnerError> {
        let stages = WhisperRunner::load_with(base, "", device, q8)?.unpadded();
        let mismatch = |message: String| {
            WhisperRunnerError::Setup(
                AdapterError::Mismatch {
                    base: base.display().to_string(),
                    message,
                }
                .to_string(),
            )
        };
        let c = &adapter.config;
        let model = stages.model();
        if model.config.d_model != c.base.d_model
            || model.encoder.num_layers() != c.base.encoder_layers
        {
            return Err(mismatch(format!(
                "the adapter is for {} (d_model {}, {} encoder layers), the model has d_model {} and {} encoder layers",
                c.base.name,
                c.base.d_model,
                c.base.encoder_layers,
                model.config.d_model,
                model.encoder.num_layers()
            )));
        }
        let tokenizer = stages.tokenizer();
        let verbaliser = Verbaliser::new(&c.labels, &[Form::Space], tokenizer)?;
        for ((label, tokens), &trained) in c
            .labels
            .iter()
            .zip(verbaliser.label_tokens())
            .zip(&c.label_tokens)
        {
            if tokens.first_tokens != [trained] {
                return Err(mismatch(format!(
                    "label `{label}` starts with token(s) {:?} in this tokenizer, the adapter was trained on {trained}",
                    tokens.first_tokens
                )));
            }
        }
        let prompt = c
            .prompt
            .iter()
            .map(|t| {
                tokenizer
                    .token_id(t)
                    .ok_or_else(|| mismatch(format!("the tokenizer has no token {t}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            stages,
            adapter,
            prompt,
        })
    }

    /// Quantises the base model for `--quant q8` ([`WhisperRunner::quantize`]: on the
    /// CPU the encoder's linear layers to int8; the adapter stays f32); returns how many
    /// matrices were quantised.
    pub fn quantize(&mut self) -> usize {
        self.stages.quantize()
    }

    /// The decoder prompt token ids (the adapter's shift is added to the last).
    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    /// The adapter's labels (all the model can answer), in training order.
    pub fn labels(&self) -> &[String] {
        &self.adapter.config.labels
    }

    /// The calibrated temperature shipped with the adapter (for all its labels; see
    /// [`AdapterConfig::temperature_for`] for a label subset).
    pub fn temperature(&self) -> f32 {
        self.adapter.config.temperature
    }

    /// The adapter's configuration.
    pub fn adapter_config(&self) -> &AdapterConfig {
        &self.adapter.config
    }

    /// Vocabulary logits at the answer position of each utterance (16 kHz mono, real
    /// length: no 30 s padding; silence trimmed as the adapter's training clips were).
    pub fn answer_logits(
        &self,
        utterances: &[&[f32]],
    ) -> Result<(Vec<Vec<f32>>, StageTimes), WhisperRunnerError> {
        self.answer_rows(utterances, None)
    }

    /// [`answer_logits`](Self::answer_logits) restricted to the vocabulary `rows` (in
    /// that order) when given: a `first-token` readout needs its label tokens' rows of
    /// the 51,865-row output projection, not all of them.
    pub fn answer_rows(
        &self,
        utterances: &[&[f32]],
        rows: Option<&[u32]>,
    ) -> Result<(Vec<Vec<f32>>, StageTimes), WhisperRunnerError> {
        let mut times = StageTimes::default();
        let mut out = Vec::with_capacity(utterances.len());
        let layers = &self.adapter.config.cond_layers;
        let model = self.stages.model();
        let device = self.stages.device();
        for samples in utterances {
            let samples = match &self.adapter.config.trim {
                Some(trim) => trim.apply(samples),
                None => samples,
            };
            let feats = self.stages.features(&[samples], &mut times)?;
            let t = Instant::now();
            let (states, taps) = model.encoder.forward_with_taps(feats, layers)?;
            let shift = self.adapter.shift_from_taps(taps, device)?;
            times.encoder += t.elapsed();
            let t = Instant::now();
            let n = self.prompt.len();
            let d = self.adapter.config.base.d_model;
            let shift = if n == 1 {
                shift
            } else {
                Tensor::cat(vec![Tensor::zeros([1, n - 1, d], device), shift], 1)
            };
            let mut cache = model.decoder.start(states);
            let tokens = token_tensor(&self.prompt, device);
            let logits = match rows {
                Some(rows) => {
                    model
                        .decoder
                        .forward_last_rows(tokens, Some(shift), rows, &mut cache)?
                }
                None => model
                    .decoder
                    .forward_last_shifted(tokens, Some(shift), &mut cache)?,
            };
            out.push(read_vec(logits)?);
            times.decoder += t.elapsed();
        }
        Ok((out, times))
    }

    /// `first-token` distributions over `labels` (a subset of [`labels`](Self::labels),
    /// any order; all of them when `None`) at `temperature` (the adapter's one for that
    /// label set when `None`).
    pub fn score(
        &self,
        utterances: &[&[f32]],
        labels: Option<&[String]>,
        temperature: Option<f32>,
    ) -> Result<(Vec<LabelScores>, StageTimes), WhisperRunnerError> {
        let scorer = self.scorer(labels, temperature)?;
        let rows = scorer.readout_tokens();
        let (logits, times) = self.answer_rows(utterances, Some(&rows))?;
        let scores = logits
            .iter()
            .map(|l| scorer.score_rows(&rows, l))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((scores, times))
    }

    /// The `first-token` distribution over `labels` (all when `None`) from one
    /// utterance's answer-position vocabulary logits (see
    /// [`answer_logits`](Self::answer_logits)): several label sets or temperatures can be
    /// read from one forward pass.
    pub fn scores_from_logits(
        &self,
        vocab_logits: &[f32],
        labels: Option<&[String]>,
        temperature: Option<f32>,
    ) -> Result<LabelScores, WhisperRunnerError> {
        Ok(self.scorer(labels, temperature)?.score(vocab_logits)?)
    }

    /// The `first-token` scorer of `labels` (all when `None`; each must be one of the
    /// adapter's) at `temperature` (the adapter's one for that label set when `None`:
    /// [`AdapterConfig::temperature_for`]).
    fn scorer(
        &self,
        labels: Option<&[String]>,
        temperature: Option<f32>,
    ) -> Result<FirstTokenScorer, WhisperRunnerError> {
        let all = self.labels();
        let labels = labels.unwrap_or(all);
        if let Some(unknown) = labels.iter().find(|l| !all.contains(l)) {
            return Err(WhisperRunnerError::Score(ReadoutError::Labels(format!(
                "the default model was trained on {} and cannot answer `{unknown}`",
                all.join(", ")
            ))));
        }
        let verbaliser = Verbaliser::new(labels, &[Form::Space], self.stages.tokenizer())?;
        Ok(FirstTokenScorer::new(
            verbaliser,
            temperature.unwrap_or_else(|| self.adapter.config.temperature_for(labels)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_keeps_the_loud_part_with_margins() {
        // 0.5 s silence, 0.3 s tone, 0.5 s near-silence (-60 dB), at 16 kHz.
        let mut x = vec![0.0f32; 8000];
        x.extend((0..4800).map(|i| 0.5 * (i as f32 * 0.1).sin()));
        x.extend((0..8000).map(|i| 0.0005 * (i as f32 * 0.1).sin()));
        let trim = TrimConfig {
            db: 40.0,
            margin_s: 0.15,
        };
        let kept = trim.apply(&x);
        // The tone spans frames 50..80; 2400 samples of margin on each side.
        let start = kept.as_ptr() as usize - x.as_ptr() as usize;
        assert_eq!(start / 4, 8000 - 2400);
        assert_eq!(kept.len(), 4800 + 2 * 2400);
        // A 0 dB threshold or a clip under three frames is left whole.
        let off = TrimConfig { db: 0.0, ..trim };
        assert_eq!(off.apply(&x).len(), x.len());
        assert_eq!(trim.apply(&x[..400]).len(), 400);
    }

    const D: usize = 4;

    fn json(cond_layers: &str, labels: &str, tokens: &str) -> String {
        format!(
            r#"{{"format": "{ADAPTER_FORMAT}",
                "base": {{"name": "toy", "d_model": {D}, "encoder_layers": 2}},
                "prompt": ["<|startoftranscript|>"], "cond_layers": {cond_layers},
                "labels": {labels}, "label_tokens": {tokens}, "temperature": 1.5}}"#
        )
    }

    /// Tensors whose element `i` is `0.1·i`.
    fn tensors(entries: &[(&str, Vec<usize>)]) -> Vec<u8> {
        let valued: Vec<(&str, Vec<usize>, Vec<f32>)> = entries
            .iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                (
                    *name,
                    shape.clone(),
                    (0..n).map(|i| i as f32 * 0.1).collect(),
                )
            })
            .collect();
        tensors_with(&valued)
    }

    fn tensors_with(entries: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
        let data: Vec<(String, Vec<u8>, Vec<usize>)> = entries
            .iter()
            .map(|(name, shape, values)| {
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name.to_string(), bytes, shape.clone())
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(name, bytes, shape)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytes,
                )
                .unwrap();
                (name.clone(), view)
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    fn good_tensors() -> Vec<u8> {
        tensors(&[("cond.weight", vec![D, 2 * D]), ("cond.bias", vec![D])])
    }

    #[test]
    fn a_well_formed_adapter_loads_and_computes_its_shift() {
        let a = EmotionAdapter::from_bytes(
            json("[1]", r#"["a", "b"]"#, "[5, 6]").as_bytes(),
            &good_tensors(),
            "toy",
        )
        .unwrap();
        assert_eq!(a.input_len(), 2 * D);
        let pooled = vec![1.0; 2 * D];
        let Readout::Pooled { weight, bias } = &a.readout else {
            panic!("an adapter without a readout block is pooled")
        };
        let shift = read_vec(
            a.shift(weight, bias, &pooled, &Device::flex())
                .reshape([1, D]),
        )
        .unwrap();
        // Row r of W holds 0.1·(8r … 8r+7); the bias holds 0.1·(0 … 3).
        for (r, v) in shift.iter().enumerate() {
            let row: f32 = (0..2 * D).map(|c| (r * 2 * D + c) as f32 * 0.1).sum();
            assert!((v - (row + r as f32 * 0.1)).abs() < 1e-4, "{shift:?}");
        }
    }

    #[test]
    fn malformed_adapters_are_rejected_naming_the_problem() {
        let cases: Vec<(String, Vec<u8>, &str)> = vec![
            (
                json("[3]", r#"["a"]"#, "[5]"),
                good_tensors(),
                "cond_layers",
            ),
            (
                json("[1]", r#"["a", "b"]"#, "[5]"),
                good_tensors(),
                "label tokens",
            ),
            (
                json("[1]", r#"["a"]"#, "[5]"),
                tensors(&[("cond.weight", vec![D, 2 * D])]),
                "`cond.bias`: missing",
            ),
            (
                json("[1]", r#"["a"]"#, "[5]"),
                tensors(&[("cond.weight", vec![D, D]), ("cond.bias", vec![D])]),
                "shape [4, 4], expected [4, 8]",
            ),
            (
                json("[1]", r#"["a"]"#, "[5]"),
                tensors(&[
                    ("cond.weight", vec![D, 2 * D]),
                    ("cond.bias", vec![D]),
                    ("prefix.k", vec![1]),
                ]),
                "prefix.k",
            ),
            (
                json("[1]", r#"["a"]"#, "[5]").replace(ADAPTER_FORMAT, "other/9"),
                good_tensors(),
                "format",
            ),
            ("{".into(), good_tensors(), "adapter.json"),
        ];
        for (config, st, expected) in cases {
            let err = EmotionAdapter::from_bytes(config.as_bytes(), &st, "toy").unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{err} lacks {expected:?}"
            );
        }
    }

    /// `json` with a `label_set_temperatures` block.
    fn json_with_sets(sets: &str) -> String {
        json("[1]", r#"["a", "b", "c"]"#, "[5, 6, 7]").replace(
            r#""temperature": 1.5"#,
            &format!(r#""temperature": 1.5, "label_set_temperatures": {sets}"#),
        )
    }

    #[test]
    fn a_label_set_scores_at_its_own_temperature_in_any_order() {
        let sets = r#"[{"dataset": "x", "labels": ["c", "a"], "temperature": 0.8},
                       {"dataset": "y", "labels": ["a", "b"], "temperature": 2.5}]"#;
        let a = EmotionAdapter::from_bytes(json_with_sets(sets).as_bytes(), &good_tensors(), "toy")
            .unwrap();
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let config = &a.config;
        assert_eq!(config.temperature_for(&labels(&["a", "c"])), 0.8);
        assert_eq!(config.temperature_for(&labels(&["c", "a"])), 0.8);
        assert_eq!(config.temperature_for(&labels(&["b", "a"])), 2.5);
        // Any other set, a superset or a subset included, gets the shipped temperature.
        for other in [&["a", "b", "c"][..], &["a"], &["b", "c"]] {
            assert_eq!(config.temperature_for(&labels(other)), 1.5, "{other:?}");
            assert_eq!(config.label_set_temperature(&labels(other)), None);
        }
        // Older adapters have none.
        let plain = EmotionAdapter::from_bytes(
            json("[1]", r#"["a", "b"]"#, "[5, 6]").as_bytes(),
            &good_tensors(),
            "toy",
        )
        .unwrap();
        assert!(plain.config.label_set_temperatures.is_empty());
    }

    #[test]
    fn malformed_label_sets_are_rejected_naming_the_dataset() {
        let cases = [
            (
                r#"[{"dataset": "x", "labels": ["a", "z"], "temperature": 1.0}]"#,
                "(x): `z` is not one of the labels",
            ),
            (
                r#"[{"dataset": "x", "labels": ["a", "a"], "temperature": 1.0}]"#,
                "(x): the labels must be distinct",
            ),
            (
                r#"[{"dataset": "x", "labels": [], "temperature": 1.0}]"#,
                "(x): the labels must be distinct and not empty",
            ),
            (
                r#"[{"dataset": "x", "labels": ["a"], "temperature": 0.0}]"#,
                "(x): temperature must be > 0",
            ),
            (
                r#"[{"dataset": "x", "labels": ["a", "b"], "temperature": 1.0},
                    {"dataset": "y", "labels": ["b", "a"], "temperature": 2.0}]"#,
                "(y): that label set appears twice",
            ),
            (r#"[{"dataset": "x", "labels": ["a"]}]"#, "temperature"),
        ];
        for (sets, expected) in cases {
            let err =
                EmotionAdapter::from_bytes(json_with_sets(sets).as_bytes(), &good_tensors(), "toy")
                    .unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{err} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn pooling_is_mean_and_unbiased_std_over_frames() {
        let x = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 10.0, 3.0, 10.0, 5.0, 10.0], [1, 3, 2]),
            &Device::flex(),
        );
        let pooled = mean_std(x).unwrap();
        assert_eq!(pooled.len(), 4);
        assert!((pooled[0] - 3.0).abs() < 1e-6 && (pooled[1] - 10.0).abs() < 1e-6);
        assert!(
            (pooled[2] - 2.0).abs() < 1e-6 && pooled[3].abs() < 1e-6,
            "{pooled:?}"
        );
        let one = Tensor::<3>::zeros([1, 1, 2], &Device::flex());
        assert!(mean_std(one).is_err());
    }

    const LAYERS: usize = 3;
    const ATT: usize = 3;

    /// Deterministic, varied values: `scale · sin(seed + 1.7·i)`.
    fn wave(n: usize, seed: f32, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| scale * (seed + 1.7 * i as f32).sin())
            .collect()
    }

    fn asp_json(mlp: usize) -> String {
        json("[0, 1, 2]", r#"["a", "b"]"#, "[5, 6]").replace(
            r#""temperature": 1.5"#,
            &format!(
                r#""temperature": 1.5, "readout": {{"kind": "asp", "att_hidden": {ATT}, "mlp_hidden": {mlp}}}"#
            ),
        )
    }

    fn asp_tensors(mlp: usize) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
        let head_in = if mlp > 0 { mlp } else { 2 * D };
        let mut t = vec![
            ("mix.weight", vec![LAYERS], vec![0.2, 0.5, 0.3]),
            ("norm.mean", vec![LAYERS, D], wave(LAYERS * D, 0.3, 0.5)),
            (
                "norm.std",
                vec![LAYERS, D],
                wave(LAYERS * D, 1.1, 0.4).iter().map(|v| v + 1.0).collect(),
            ),
            ("att.weight", vec![ATT, D], wave(ATT * D, 2.0, 0.8)),
            ("att.bias", vec![ATT], wave(ATT, 0.7, 0.2)),
            ("att.v", vec![ATT], wave(ATT, 1.9, 1.0)),
            ("out.weight", vec![D, head_in], wave(D * head_in, 0.4, 0.6)),
            ("out.bias", vec![D], wave(D, 2.5, 0.1)),
        ];
        if mlp > 0 {
            t.push((
                "hidden.weight",
                vec![mlp, 2 * D],
                wave(mlp * 2 * D, 3.1, 0.5),
            ));
            t.push(("hidden.bias", vec![mlp], wave(mlp, 0.9, 0.3)));
        }
        t
    }

    /// erf by its Maclaurin series (exact to f64 rounding for the |x| < 3 used here).
    fn erf(x: f64) -> f64 {
        assert!(x.abs() < 3.0, "series used out of range: {x}");
        let (mut term, mut sum) = (x, x);
        for n in 1..80 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    /// readout.py's `LayerASP` written out in scalar f64 arithmetic.
    fn asp_by_hand(taps: &[Vec<f32>], frames: usize, mlp: usize) -> Vec<f64> {
        let p: BTreeMap<&str, Vec<f64>> = asp_tensors(mlp)
            .into_iter()
            .map(|(n, _, v)| (n, v.into_iter().map(f64::from).collect()))
            .collect();
        let h: Vec<Vec<f64>> = (0..frames)
            .map(|t| {
                (0..D)
                    .map(|c| {
                        (0..LAYERS)
                            .map(|l| {
                                let x = f64::from(taps[l][t * D + c]);
                                p["mix.weight"][l] * (x - p["norm.mean"][l * D + c])
                                    / p["norm.std"][l * D + c]
                            })
                            .sum()
                    })
                    .collect()
            })
            .collect();
        let e: Vec<f64> = h
            .iter()
            .map(|ht| {
                (0..ATT)
                    .map(|k| {
                        let u: f64 = (0..D).map(|c| p["att.weight"][k * D + c] * ht[c]).sum();
                        p["att.v"][k] * (u + p["att.bias"][k]).tanh()
                    })
                    .sum()
            })
            .collect();
        let max = e.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = e.iter().map(|v| (v - max).exp()).sum();
        let a: Vec<f64> = e.iter().map(|v| (v - max).exp() / total).collect();
        let mut z = vec![0.0; 2 * D];
        for c in 0..D {
            let mean: f64 = (0..frames).map(|t| a[t] * h[t][c]).sum();
            let sq: f64 = (0..frames).map(|t| a[t] * h[t][c] * h[t][c]).sum();
            z[c] = mean;
            z[D + c] = (sq - mean * mean).max(1e-6).sqrt();
        }
        if mlp > 0 {
            z = (0..mlp)
                .map(|j| {
                    let u: f64 = (0..2 * D)
                        .map(|i| p["hidden.weight"][j * 2 * D + i] * z[i])
                        .sum::<f64>()
                        + p["hidden.bias"][j];
                    0.5 * u * (1.0 + erf(u / std::f64::consts::SQRT_2))
                })
                .collect();
        }
        (0..D)
            .map(|c| {
                (0..z.len())
                    .map(|i| p["out.weight"][c * z.len() + i] * z[i])
                    .sum::<f64>()
                    + p["out.bias"][c]
            })
            .collect()
    }

    #[test]
    fn the_asp_readout_computes_what_the_training_code_does() {
        let device = Device::flex();
        let frames = 5;
        let taps: Vec<Vec<f32>> = (0..LAYERS)
            .map(|l| wave(frames * D, l as f32, 2.0 + l as f32))
            .collect();
        for mlp in [0, 5] {
            let a = EmotionAdapter::from_bytes(
                asp_json(mlp).as_bytes(),
                &tensors_with(&asp_tensors(mlp)),
                "toy",
            )
            .unwrap();
            let tensors: Vec<Tensor<3>> = taps
                .iter()
                .map(|t| Tensor::from_data(TensorData::new(t.clone(), [1, frames, D]), &device))
                .collect();
            let shift = a.shift_from_taps(tensors, &device).unwrap();
            assert_eq!(shift.dims(), [1, 1, D]);
            let got = read_vec(shift.reshape([1, D])).unwrap();
            let want = asp_by_hand(&taps, frames, mlp);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (f64::from(*g) - w).abs() < 1e-4,
                    "mlp {mlp}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn malformed_asp_adapters_are_rejected_naming_the_problem() {
        let without = |name: &str| -> Vec<u8> {
            let t: Vec<_> = asp_tensors(0)
                .into_iter()
                .filter(|(n, ..)| *n != name)
                .collect();
            tensors_with(&t)
        };
        let mut bad_std = asp_tensors(0);
        bad_std[2].2[1] = 0.0;
        let cases: Vec<(String, Vec<u8>, &str)> = vec![
            (asp_json(0), without("att.v"), "`att.v`: missing"),
            (
                asp_json(5),
                tensors_with(&asp_tensors(0)),
                "`hidden.weight`: missing",
            ),
            (asp_json(0), tensors_with(&bad_std), "must be > 0"),
            (
                asp_json(0).replace("[0, 1, 2]", "[0, 2, 1]"),
                tensors_with(&asp_tensors(0)),
                "layers 0..n in order",
            ),
            (
                asp_json(0).replace(r#""kind": "asp""#, r#""kind": "lstm""#),
                tensors_with(&asp_tensors(0)),
                "readout kind \"lstm\" is unknown",
            ),
            (
                asp_json(0),
                tensors_with(&asp_tensors(5)),
                "shape [4, 5], expected [4, 8]",
            ),
        ];
        for (config, st, expected) in cases {
            let err = EmotionAdapter::from_bytes(config.as_bytes(), &st, "toy").unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{err} lacks {expected:?}"
            );
        }
    }
}
