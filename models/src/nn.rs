//! Building blocks shared by the transformer models, and constructors that fill burn's
//! layers from a [`TensorStore`] by Hugging Face name.
//!
//! Constructors build the burn layers directly from loaded tensors (no random init
//! followed by overwrite), so loading a large model does not pay for initialisers.
//! HF stores linear weights as `[out, in]`; burn's `Linear` (row layout) wants
//! `[in, out]`, so weights are transposed once on load, into contiguous memory.

use burn::module::Param;
use burn::nn::conv::Conv1d;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear, PaddingConfig1d};
use burn::prelude::*;
use burn::tensor::module::attention as fused_attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::safetensors_load::TensorStore;

mod cpu;
mod dense;
pub(crate) mod host;
mod token_embedding;

pub use cpu::{attention, gelu};
pub(crate) use cpu::{gelu_slice, is_flex};
pub use dense::Dense;
pub use token_embedding::{TokenEmbedding, select_rows};

/// `m` `[rows, cols]` row-major, transposed to `[cols, rows]`, contiguous (HF's `[out, in]`
/// weights to burn's `[in, out]` and back).
pub(crate) fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(
        m.len(),
        rows * cols,
        "{} values for [{rows}, {cols}]",
        m.len()
    );
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| m[r * cols + c]))
        .collect()
}

/// `{prefix}.weight` `[d_out, d_in]` (+ `{prefix}.bias` `[d_out]` if `bias`) as a burn `Linear`.
pub fn load_linear(
    store: &mut TensorStore,
    prefix: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    device: &Device,
) -> Linear {
    let name = format!("{prefix}.weight");
    let weight = match store.take_vec(&name, &[d_out, d_in]) {
        Some(w) => Tensor::from_data(
            TensorData::new(transposed(&w, d_out, d_in), [d_in, d_out]),
            device,
        ),
        None => Tensor::zeros([d_in, d_out], device),
    };
    let bias =
        bias.then(|| Param::from_tensor(store.take(&format!("{prefix}.bias"), [d_out], device)));
    Linear {
        weight: Param::from_tensor(weight),
        bias,
    }
}

/// The ε of every LayerNorm [`load_layer_norm`] makes (`torch.nn.LayerNorm`'s default).
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

/// `{prefix}.weight` and `{prefix}.bias` as a LayerNorm (`torch.nn.LayerNorm`, eps 1e-5).
pub fn load_layer_norm(
    store: &mut TensorStore,
    prefix: &str,
    d: usize,
    device: &Device,
) -> LayerNorm {
    let mut ln = LayerNormConfig::new(d)
        .with_epsilon(LAYER_NORM_EPSILON)
        .init(device);
    ln.gamma = Param::from_tensor(store.take(&format!("{prefix}.weight"), [d], device));
    ln.beta = Some(Param::from_tensor(store.take(
        &format!("{prefix}.bias"),
        [d],
        device,
    )));
    ln
}

/// `{prefix}.weight` `[c_out, c_in, k]` + bias as a Conv1d with symmetric padding `k / 2`.
pub fn load_conv1d(
    store: &mut TensorStore,
    prefix: &str,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> Conv1d {
    Conv1d {
        weight: Param::from_tensor(store.take(
            &format!("{prefix}.weight"),
            [c_out, c_in, kernel],
            device,
        )),
        bias: Some(Param::from_tensor(store.take(
            &format!("{prefix}.bias"),
            [c_out],
            device,
        ))),
        stride,
        kernel_size: kernel,
        dilation: 1,
        groups: 1,
        padding: PaddingConfig1d::Explicit(kernel / 2, kernel / 2),
    }
}

/// `{prefix}.weight` `[n, d]` as an Embedding.
pub fn load_embedding(
    store: &mut TensorStore,
    prefix: &str,
    n: usize,
    d: usize,
    device: &Device,
) -> Embedding {
    Embedding {
        weight: Param::from_tensor(store.take(&format!("{prefix}.weight"), [n, d], device)),
    }
}

/// Keys and values of one attention layer, `[batch, heads, seq, head_dim]`.
#[derive(Debug, Clone)]
pub struct KeyValue {
    /// Keys.
    pub k: Tensor<4>,
    /// Values.
    pub v: Tensor<4>,
}

impl KeyValue {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.k.dims()[2]
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Multi-head attention with separate q/k/v/out projections (BART/Whisper layout),
/// using burn's fused `attention` op (scale 1/sqrt(head_dim), as HF's `scaling`), or on the CPU
/// backend [`attention`] when nothing is masked.
#[derive(Module, Debug)]
pub struct MultiHeadAttention {
    /// Query projection.
    pub q_proj: Dense,
    /// Key projection (Whisper: no bias).
    pub k_proj: Dense,
    /// Value projection.
    pub v_proj: Dense,
    /// Output projection.
    pub out_proj: Dense,
    /// Number of heads.
    pub n_heads: usize,
}

impl MultiHeadAttention {
    /// Loads `{prefix}.{q,k,v,out}_proj`; `k_bias` is false for Whisper.
    pub fn load(
        store: &mut TensorStore,
        prefix: &str,
        d: usize,
        n_heads: usize,
        k_bias: bool,
        device: &Device,
    ) -> Self {
        let load = |store: &mut TensorStore, name: &str, bias: bool| {
            Dense::new(load_linear(
                store,
                &format!("{prefix}.{name}"),
                d,
                d,
                bias,
                device,
            ))
        };
        Self {
            q_proj: load(store, "q_proj", true),
            k_proj: load(store, "k_proj", k_bias),
            v_proj: load(store, "v_proj", true),
            out_proj: load(store, "out_proj", true),
            n_heads,
        }
    }

    /// The four projections.
    pub fn projections(&self) -> [&Dense; 4] {
        [&self.q_proj, &self.k_proj, &self.v_proj, &self.out_proj]
    }

    /// The four projections (to quantise them, see [`Dense::quantize_q8`]).
    pub fn projections_mut(&mut self) -> [&mut Dense; 4] {
        [
            &mut self.q_proj,
            &mut self.k_proj,
            &mut self.v_proj,
            &mut self.out_proj,
        ]
    }

    /// `[b, t, d]` → `[b, heads, t, d / heads]`.
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, t, d] = x.dims();
        x.reshape([b, t, self.n_heads, d / self.n_heads])
            .swap_dims(1, 2)
    }

    /// Keys and values of `x` (`[b, s, d]`), e.g. encoder states for cross-attention.
    pub fn key_value(&self, x: Tensor<3>) -> KeyValue {
        KeyValue {
            k: self.split_heads(self.k_proj.forward(x.clone())),
            v: self.split_heads(self.v_proj.forward(x)),
        }
    }

    /// Attends queries from `x` to `kv`; `causal` masks future positions, aligned so that
    /// the last query sees every key (queries are the newest positions of a cache).
    pub fn attend(&self, x: Tensor<3>, kv: &KeyValue, causal: bool) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let q = self.split_heads(self.q_proj.forward(x));
        let ctx = if causal {
            let options = AttentionModuleOptions {
                is_causal: true,
                ..Default::default()
            };
            fused_attention(q, kv.k.clone(), kv.v.clone(), None, None, options)
        } else {
            attention(q, kv.k.clone(), kv.v.clone())
        };
        self.out_proj
            .forward(ctx.swap_dims(1, 2).reshape([b, t, d]))
    }

    /// The key and value weights laid out per head for [`attend_states`](Self::attend_states),
    /// or `None` when the projections are not plain f32 (quantised or held in f16).
    pub fn head_weights(&self) -> Option<HeadWeights> {
        let (w_k, _) = self.k_proj.f32_tensors()?;
        let (w_v, v_bias) = self.v_proj.f32_tensors()?;
        let [d_in, d] = w_k.dims();
        let (h, dh) = (self.n_heads, d / self.n_heads);
        // Copied into contiguous memory once, so no call packs a strided view.
        let contiguous = |t: Tensor<3>| {
            let device = t.device();
            Tensor::<3>::from_data(t.into_data(), &device)
        };
        Some(HeadWeights {
            k: contiguous(w_k.reshape([d_in, h, dh]).permute([1, 2, 0])),
            v: contiguous(w_v.reshape([d_in, h, dh]).swap_dims(0, 1)),
            v_bias,
        })
    }

    /// Cross-attention of the queries from `x` (`[b, t, d]`) to `states` (`[b, s, d_in]`)
    /// without computing the keys and values of `states`; `heads` are this layer's
    /// [`head_weights`](Self::head_weights).
    ///
    /// Why: keys and values cost `2 · s · d²` multiply-adds (Whisper base, 5 s: 131 M a
    /// layer), which a first-token readout with a few query tokens then barely uses.
    /// Re-associating the products, per head `h`,
    /// `q_h · (S W_k,h)ᵀ = (q_h W_k,hᵀ) · Sᵀ` and `P_h · (S W_v,h + b_v,h) = (P_h S) W_v,h + b_v,h`
    /// (a softmax row sums to 1), costs `2 · t · (d² + heads · s · d)` instead: about 12×
    /// less for Whisper base's four prompt tokens on 5 s. A key bias adds the same
    /// number to every score of a query, which the softmax ignores, so it is left out.
    /// Worth it while the queries are few; the caller decides
    /// ([`few_queries_for_states`]).
    pub fn attend_states(
        &self,
        x: Tensor<3>,
        states: &Tensor<3>,
        heads: &HeadWeights,
    ) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let [h, dh, d_in] = heads.k.dims();
        // Heads side by side in the batch: `[h, b·t, dh]`.
        let q = self
            .q_proj
            .forward(x)
            .reshape([b * t, h, dh])
            .swap_dims(0, 1);
        // Queries in the states' space, heads into the rows: `[b, h·t, d_in]`.
        let q_in = q
            .matmul(heads.k.clone())
            .reshape([h, b, t, d_in])
            .swap_dims(0, 1)
            .reshape([b, h * t, d_in]);
        // Scores as `S · q_inᵀ` (`[b, s, h·t]`), so the large `S` is read in its own layout.
        let scores = states
            .clone()
            .matmul(q_in.swap_dims(1, 2))
            .swap_dims(1, 2)
            .mul_scalar(1.0 / (dh as f32).sqrt());
        let p = burn::tensor::activation::softmax(scores, 2); // [b, h·t, s]
        let mixed = p
            .matmul(states.clone())
            .reshape([b, h, t, d_in])
            .swap_dims(0, 1)
            .reshape([h, b * t, d_in]);
        let mut ctx = mixed
            .matmul(heads.v.clone())
            .reshape([h, b, t, dh])
            .permute([1, 2, 0, 3])
            .reshape([b, t, d]);
        if let Some(b_v) = &heads.v_bias {
            ctx = ctx + b_v.clone().reshape([1, 1, d]);
        }
        self.out_proj.forward(ctx)
    }

    /// Bidirectional self-attention (encoder).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let kv = self.key_value(x.clone());
        self.attend(x, &kv, false)
    }

    /// Causal self-attention over `cache` plus the new positions `x`; appends them to `cache`.
    pub fn forward_cached(&self, x: Tensor<3>, cache: &mut Option<KeyValue>) -> Tensor<3> {
        let new = self.key_value(x.clone());
        let kv = match cache.take() {
            Some(old) => KeyValue {
                k: Tensor::cat(vec![old.k, new.k], 2),
                v: Tensor::cat(vec![old.v, new.v], 2),
            },
            None => new,
        };
        let out = self.attend(x, &kv, true);
        *cache = Some(kv);
        out
    }
}

/// True when [`MultiHeadAttention::attend_states`] is the cheaper way for `queries`
/// query tokens in all (so far and now) against `frames` states of width `d` with
/// `heads` heads: it costs about `queries · (d + heads · frames)` per `d` multiply-adds
/// where computing keys and values once costs `frames · d`; below half of that break-even,
/// so that a long decode, which computes them after all, wastes at most half again.
pub fn few_queries_for_states(queries: usize, frames: usize, d: usize, heads: usize) -> bool {
    2 * queries * (d + heads * frames) <= frames * d
}

/// An attention layer's key and value weights per head, for
/// [`MultiHeadAttention::attend_states`].
#[derive(Debug, Clone)]
pub struct HeadWeights {
    /// `W_k` per head, transposed: `[heads, head_dim, d_in]`.
    k: Tensor<3>,
    /// `W_v` per head: `[heads, d_in, head_dim]`.
    v: Tensor<3>,
    /// The value bias `[d]`.
    v_bias: Option<Tensor<1>>,
}

/// Transformer MLP `fc2(gelu(fc1(x)))` (erf GELU, as `torch.nn.functional.gelu`).
#[derive(Module, Debug)]
pub struct GeluMlp {
    /// Up projection.
    pub fc1: Dense,
    /// Down projection.
    pub fc2: Dense,
}

impl GeluMlp {
    /// Loads `{prefix}fc1` and `{prefix}fc2` (prefix includes the trailing dot, if any).
    pub fn load(
        store: &mut TensorStore,
        prefix: &str,
        d: usize,
        ffn: usize,
        device: &Device,
    ) -> Self {
        Self {
            fc1: Dense::new(load_linear(
                store,
                &format!("{prefix}fc1"),
                d,
                ffn,
                true,
                device,
            )),
            fc2: Dense::new(load_linear(
                store,
                &format!("{prefix}fc2"),
                ffn,
                d,
                true,
                device,
            )),
        }
    }

    /// Applies the MLP.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }

    /// The two projections.
    pub fn projections(&self) -> [&Dense; 2] {
        [&self.fc1, &self.fc2]
    }

    /// The two projections (to quantise them, see [`Dense::quantize_q8`]).
    pub fn projections_mut(&mut self) -> [&mut Dense; 2] {
        [&mut self.fc1, &mut self.fc2]
    }
}

/// RMSNorm as in Llama/Qwen2/Mistral: `w * x / sqrt(mean(x²) + eps)` (no bias, no centring).
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// Scale.
    pub weight: Param<Tensor<1>>,
    /// Added to the mean square.
    pub eps: f64,
}

impl RmsNorm {
    /// Loads `{prefix}.weight`.
    pub fn load(
        store: &mut TensorStore,
        prefix: &str,
        d: usize,
        eps: f64,
        device: &Device,
    ) -> Self {
        Self {
            weight: Param::from_tensor(store.take(&format!("{prefix}.weight"), [d], device)),
            eps,
        }
    }

    /// Normalises over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let ms = x.clone().powi_scalar(2).mean_dim(D - 1);
        let x = x * (ms + self.eps).sqrt().recip();
        x * self.weight.val().unsqueeze::<D>()
    }
}

/// Rotary position embedding tables (rotate-half convention of HF Llama/Qwen2, not the
/// interleaved one): `x·cos + rotate_half(x)·sin`, with
/// `inv_freq_i = theta^(-2i/d)` and the angle table duplicated over both halves.
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor<2>,
    sin: Tensor<2>,
}

impl Rope {
    /// Tables for `max_positions` positions of `head_dim`-sized heads.
    pub fn new(head_dim: usize, max_positions: usize, theta: f64, device: &Device) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(max_positions * head_dim);
        let mut sin = Vec::with_capacity(max_positions * head_dim);
        // HF computes inv_freq and the angles in f32; so do we, to stay bit-close.
        let inv: Vec<f32> = (0..half)
            .map(|i| (1.0 / theta.powf((2 * i) as f64 / head_dim as f64)) as f32)
            .collect();
        for p in 0..max_positions {
            for _ in 0..2 {
                for f in &inv {
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [max_positions, head_dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [max_positions, head_dim]), device),
        }
    }

    /// Number of positions covered.
    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// Rotates `x` `[b, heads, t, head_dim]` whose first position is `offset`.
    pub fn apply(&self, x: Tensor<4>, offset: usize) -> Tensor<4> {
        let [_, _, t, d] = x.dims();
        let cos = self
            .cos
            .clone()
            .slice(s![offset..offset + t, ..])
            .unsqueeze::<4>();
        let sin = self
            .sin
            .clone()
            .slice(s![offset..offset + t, ..])
            .unsqueeze::<4>();
        let x1 = x.clone().slice(s![.., .., .., 0..d / 2]);
        let x2 = x.clone().slice(s![.., .., .., d / 2..d]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos + rotated * sin
    }
}

/// Gated MLP `down(silu(gate(x)) * up(x))` (Llama/Qwen2 "SwiGLU"), no biases.
#[derive(Module, Debug)]
pub struct SwiGluMlp {
    /// Gate projection.
    pub gate_proj: Linear,
    /// Up projection.
    pub up_proj: Linear,
    /// Down projection.
    pub down_proj: Linear,
}

impl SwiGluMlp {
    /// Loads `{prefix}.{gate,up,down}_proj`.
    pub fn load(
        store: &mut TensorStore,
        prefix: &str,
        d: usize,
        ffn: usize,
        device: &Device,
    ) -> Self {
        Self {
            gate_proj: load_linear(store, &format!("{prefix}.gate_proj"), d, ffn, false, device),
            up_proj: load_linear(store, &format!("{prefix}.up_proj"), d, ffn, false, device),
            down_proj: load_linear(store, &format!("{prefix}.down_proj"), ffn, d, false, device),
        }
    }

    /// Applies the MLP.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let gate = burn::tensor::activation::silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}

/// Repeats each of the `kv_heads` key/value heads `rep` times (grouped-query attention),
/// `[b, kv_heads, s, d]` → `[b, kv_heads * rep, s, d]`, head `h` using kv head `h / rep`
/// as HF's `repeat_kv`.
pub fn repeat_kv(x: Tensor<4>, rep: usize) -> Tensor<4> {
    if rep == 1 {
        return x;
    }
    let [b, kvh, s, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, kvh, rep, s, d])
        .reshape([b, kvh * rep, s, d])
}

/// Splices audio embeddings into text embeddings: row `i` of the result is `text[i]`,
/// except at positions whose id is `placeholder`, which take the rows of `audio` in
/// order (transformers' `masked_scatter`). Errors if the counts differ.
pub fn splice_placeholders(
    text: Tensor<2>,
    ids: &[u32],
    placeholder: u32,
    audio: Tensor<2>,
) -> Result<Tensor<2>, String> {
    let t = ids.len();
    let n_audio = audio.dims()[0];
    let n_placeholders = ids.iter().filter(|&&id| id == placeholder).count();
    if n_placeholders != n_audio {
        return Err(format!(
            "{n_placeholders} audio placeholder tokens for {n_audio} audio embeddings"
        ));
    }
    let device = text.device();
    let mut k = 0i64;
    let index: Vec<i64> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            if id == placeholder {
                k += 1;
                t as i64 + k - 1
            } else {
                i as i64
            }
        })
        .collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [t]), &device);
    Ok(Tensor::cat(vec![text, audio], 0).select(0, index))
}

#[cfg(test)]
mod tests {
    use burn::nn::LinearConfig;

    use super::*;

    fn tensor<const D: usize>(dims: [usize; D], seed: f32, device: &Device) -> Tensor<D> {
        let n = dims.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| ((i as f32 * 0.61 + seed).sin()) * 0.8)
            .collect();
        Tensor::from_data(TensorData::new(values, dims), device)
    }

    /// A layer with every weight and bias set (the key bias too, which the direct path
    /// leaves out because the softmax ignores it).
    fn dense(d_in: usize, d_out: usize, seed: f32, device: &Device) -> Dense {
        let mut linear = LinearConfig::new(d_in, d_out).init(device);
        linear.weight = Param::from_tensor(tensor([d_in, d_out], seed, device));
        linear.bias = Some(Param::from_tensor(tensor([d_out], seed + 0.5, device)));
        Dense::new(linear)
    }

    #[test]
    fn attending_to_states_equals_attending_to_their_keys_and_values() {
        let device = Device::flex();
        let (d, heads) = (48, 4);
        let mha = MultiHeadAttention {
            q_proj: dense(d, d, 1.0, &device),
            k_proj: dense(d, d, 2.0, &device),
            v_proj: dense(d, d, 3.0, &device),
            out_proj: dense(d, d, 4.0, &device),
            n_heads: heads,
        };
        for (b, t, s) in [(1, 1, 5), (2, 3, 37), (1, 4, 250)] {
            let x = tensor([b, t, d], 5.0, &device);
            let states = tensor([b, s, d], 6.0, &device);
            let want = mha.attend(x.clone(), &mha.key_value(states.clone()), false);
            let heads = mha.head_weights().expect("f32 projections");
            let got = mha.attend_states(x, &states, &heads);
            assert_eq!(got.dims(), [b, t, d]);
            let (want, got) = (
                want.into_data().try_into_vec::<f32>().unwrap(),
                got.into_data().try_into_vec::<f32>().unwrap(),
            );
            for (w, g) in want.iter().zip(&got) {
                assert!(
                    (w - g).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{b}×{t}×{s}: {g} vs {w}"
                );
            }
        }
        let mut quantised = mha.clone();
        assert!(quantised.k_proj.quantize_q8());
        assert!(
            quantised.head_weights().is_none(),
            "int8 keys have no f32 heads"
        );
    }

    #[test]
    fn transposed_swaps_rows_and_columns() {
        assert_eq!(
            transposed(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }

    #[test]
    fn few_queries_means_below_half_the_break_even() {
        // Whisper base on 5 s: keys/values cost 250 · 512 per query's 512 + 8 · 250.
        assert!(few_queries_for_states(4, 250, 512, 8));
        assert!(few_queries_for_states(25, 250, 512, 8));
        assert!(!few_queries_for_states(26, 250, 512, 8));
        // Short audio: keys/values are cheap, so fewer queries go direct.
        assert!(few_queries_for_states(4, 10, 512, 8));
        assert!(!few_queries_for_states(5, 10, 512, 8));
    }
}
