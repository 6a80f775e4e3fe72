//! Whisper text decoder with a key/value cache.
//!
//! The cache holds, per layer, the self-attention keys/values of every position decoded
//! so far and the encoder states; the cross-attention attends to those directly while the
//! decode has few tokens and to their keys/values, computed once, after that. Feeding a
//! prompt and then one token at a time gives the same logits as recomputing the whole
//! sequence, which the fixture tests check against transformers' uncached forward.

use std::sync::Arc;

use burn::module::Param;
use burn::nn::LayerNorm;
use burn::prelude::*;

use super::{WhisperConfig, WhisperError};
use crate::nn::{
    GeluMlp, HeadWeights, KeyValue, MultiHeadAttention, TokenEmbedding, few_queries_for_states,
    load_layer_norm, select_rows,
};
use crate::safetensors_load::TensorStore;

/// `hidden @ wᵀ` for a `[vocab, d]` matrix `w` (a tied embedding) without transposing
/// `w`: computing `w @ hiddenᵀ` and transposing the small `[vocab, rows]` result avoids
/// materialising a transposed copy of the whole embedding on every call (measured: the
/// dominant cost of a decoder step on the flex backend for Whisper base).
pub(crate) fn project_rows(hidden: Tensor<3>, w: Tensor<2>) -> Tensor<3> {
    let [b, t, d] = hidden.dims();
    let vocab = w.dims()[0];
    let x = hidden.reshape([b * t, d]).transpose();
    w.matmul(x).transpose().reshape([b, t, vocab])
}

/// One pre-norm decoder layer: causal self-attention, cross-attention, MLP.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    self_attn_layer_norm: LayerNorm,
    self_attn: MultiHeadAttention,
    encoder_attn_layer_norm: LayerNorm,
    encoder_attn: MultiHeadAttention,
    final_layer_norm: LayerNorm,
    mlp: GeluMlp,
    /// The cross-attention's key/value weights per head, for a few-token decode
    /// ([`MultiHeadAttention::attend_states`]); `None` where they are not plain f32.
    #[module(skip)]
    cross_heads: Option<Arc<HeadWeights>>,
}

impl DecoderLayer {
    fn load(store: &mut TensorStore, prefix: &str, c: &WhisperConfig, device: &Device) -> Self {
        let (d, h) = (c.d_model, c.decoder_attention_heads);
        let mut layer = Self {
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
                h,
                false,
                device,
            ),
            encoder_attn_layer_norm: load_layer_norm(
                store,
                &format!("{prefix}.encoder_attn_layer_norm"),
                d,
                device,
            ),
            encoder_attn: MultiHeadAttention::load(
                store,
                &format!("{prefix}.encoder_attn"),
                d,
                h,
                false,
                device,
            ),
            final_layer_norm: load_layer_norm(
                store,
                &format!("{prefix}.final_layer_norm"),
                d,
                device,
            ),
            mlp: GeluMlp::load(store, &format!("{prefix}."), d, c.decoder_ffn_dim, device),
            cross_heads: None,
        };
        layer.refresh_cross_heads();
        layer
    }

    /// Lays out the cross-attention's key/value weights per head (see `cross_heads`),
    /// again whenever those projections change form: once quantised they have no f32
    /// heads, and decodes go through their keys/values.
    fn refresh_cross_heads(&mut self) {
        self.cross_heads = self.encoder_attn.head_weights().map(Arc::new);
    }

    /// Holds in f16 ([`crate::nn::Dense::hold_f16`]) the matrices a decoder step
    /// multiplies by its few tokens: self-attention, the cross-attention query and
    /// output, the MLP. The cross-attention keys/values see every encoder frame, once
    /// per utterance, and stay f32 for the matmul. Returns how many are held.
    fn hold_f16(&mut self) -> usize {
        let [q, k, v, o] = self.self_attn.projections_mut();
        let [cross_q, _, _, cross_o] = self.encoder_attn.projections_mut();
        let [fc1, fc2] = self.mlp.projections_mut();
        [q, k, v, o, cross_q, cross_o, fc1, fc2]
            .into_iter()
            .map(|dense| dense.hold_f16())
            .filter(|&held| held)
            .count()
    }

    /// One layer for the new positions `x`; `few` says whether the decode is still short
    /// enough to attend to the encoder states directly (see [`LayerCache`]).
    fn forward(&self, x: Tensor<3>, cache: &mut LayerCache, few: bool) -> Tensor<3> {
        let x = x.clone()
            + self
                .self_attn
                .forward_cached(self.self_attn_layer_norm.forward(x), &mut cache.self_kv);
        let query = self.encoder_attn_layer_norm.forward(x.clone());
        let direct = match (&cache.cross_kv, &self.cross_heads) {
            (None, Some(heads)) if few => Some(self.encoder_attn.attend_states(
                query.clone(),
                &cache.states,
                heads,
            )),
            _ => None,
        };
        let attended = match direct {
            Some(out) => out,
            None => {
                let kv = cache.cross_kv(&self.encoder_attn);
                self.encoder_attn.attend(query, kv, false)
            }
        };
        let x = x + attended;
        x.clone() + self.mlp.forward(self.final_layer_norm.forward(x))
    }
}

/// A layer's decoding state. Cross-attention attends to the encoder `states` directly
/// while the decode has few tokens ([`MultiHeadAttention::attend_states`]: a first-token
/// readout never computes keys and values), and to their keys and values, computed once,
/// after that.
#[derive(Debug, Clone)]
struct LayerCache {
    self_kv: Option<KeyValue>,
    states: Tensor<3>,
    cross_kv: Option<KeyValue>,
}

impl LayerCache {
    /// The cross-attention keys and values, computed now if not yet.
    fn cross_kv(&mut self, attention: &MultiHeadAttention) -> &KeyValue {
        self.cross_kv
            .get_or_insert_with(|| attention.key_value(self.states.clone()))
    }
}

/// Decoding state of a batch of utterances: their encoder states (and, once the decode is
/// long, the cross-attention keys/values of those) and the self-attention keys/values of
/// the tokens decoded so far.
#[derive(Debug, Clone)]
pub struct DecoderCache {
    layers: Vec<LayerCache>,
    len: usize,
}

impl DecoderCache {
    /// Number of token positions already decoded.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// `WhisperDecoder` plus the output projection (tied to the token embedding unless the
/// checkpoint has `proj_out.weight`).
#[derive(Module, Debug)]
pub struct WhisperDecoder {
    /// Token embedding and, when tied, output projection (in the checkpoint's half
    /// precision on the CPU backend: see [`TokenEmbedding`]).
    embed_tokens: TokenEmbedding,
    embed_positions: Param<Tensor<2>>,
    layers: Vec<DecoderLayer>,
    layer_norm: LayerNorm,
    /// Separate output projection `[vocab, d]`; `None` = tied to `embed_tokens`.
    proj_out: Option<Param<Tensor<2>>>,
}

impl WhisperDecoder {
    /// Loads the decoder from HF names under `prefix` (e.g. `model.decoder`) and the output
    /// projection from `proj_out_name` when present or when embeddings are not tied.
    pub fn load(
        store: &mut TensorStore,
        prefix: &str,
        proj_out_name: &str,
        c: &WhisperConfig,
        device: &Device,
    ) -> Self {
        let d = c.d_model;
        let embed_tokens = TokenEmbedding::load(
            store,
            &format!("{prefix}.embed_tokens"),
            c.vocab_size,
            d,
            device,
        );
        // A tied checkpoint may still carry proj_out.weight (a copy); use it only when
        // untied, and then it must be there.
        let proj_out = if c.tie_word_embeddings {
            store.ignore(proj_out_name);
            None
        } else {
            Some(Param::from_tensor(store.take(
                proj_out_name,
                [c.vocab_size, d],
                device,
            )))
        };
        Self {
            embed_tokens,
            embed_positions: Param::from_tensor(store.take(
                &format!("{prefix}.embed_positions.weight"),
                [c.max_target_positions, d],
                device,
            )),
            layers: (0..c.decoder_layers)
                .map(|i| {
                    let mut layer =
                        DecoderLayer::load(store, &format!("{prefix}.layers.{i}"), c, device);
                    // Right after reading, so the f32 copy of one layer at most is alive.
                    layer.hold_f16();
                    layer
                })
                .collect(),
            layer_norm: load_layer_norm(store, &format!("{prefix}.layer_norm"), d, device),
            proj_out,
        }
    }

    /// Starts decoding against encoder states `[batch, frames, d]`.
    pub fn start(&self, encoder_states: Tensor<3>) -> DecoderCache {
        DecoderCache {
            layers: self
                .layers
                .iter()
                .map(|_| LayerCache {
                    self_kv: None,
                    states: encoder_states.clone(),
                    cross_kv: None,
                })
                .collect(),
            len: 0,
        }
    }

    /// Feeds `tokens` `[batch, new]` after the cached positions; returns logits
    /// `[batch, new, vocab]` and extends the cache.
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        cache: &mut DecoderCache,
    ) -> Result<Tensor<3>, WhisperError> {
        let hidden = self.hidden(tokens, cache)?;
        Ok(self.project(hidden))
    }

    /// Like [`forward`](Self::forward) but returns only the logits of the last new
    /// position, `[batch, vocab]`: the only ones a scorer or a greedy step needs, and the
    /// vocabulary projection is the decoder's largest matmul.
    pub fn forward_last(
        &self,
        tokens: Tensor<2, Int>,
        cache: &mut DecoderCache,
    ) -> Result<Tensor<2>, WhisperError> {
        self.forward_last_shifted(tokens, None, cache)
    }

    /// [`forward_last`](Self::forward_last) with `shift` `[batch, new, d]` added to the
    /// token embeddings before the first layer: a learned, possibly audio-dependent soft
    /// prompt (the default emotion adapter conditions the answer token this way).
    pub fn forward_last_shifted(
        &self,
        tokens: Tensor<2, Int>,
        shift: Option<Tensor<3>>,
        cache: &mut DecoderCache,
    ) -> Result<Tensor<2>, WhisperError> {
        let hidden = self.hidden_shifted(tokens, shift, cache)?;
        let [b, t, d] = hidden.dims();
        let last = hidden.slice(s![.., t - 1..t, ..]);
        let [vocab, width] = self.embed_tokens.dims();
        debug_assert_eq!(d, width);
        Ok(self.project(last).reshape([b, vocab]))
    }

    /// [`forward_last_shifted`](Self::forward_last_shifted) that computes only the
    /// logits of vocabulary `rows` (e.g. a scorer's label tokens), `[batch, rows.len()]`,
    /// in that order: the full projection is 51,865 dot products a position for Whisper,
    /// a label readout needs a dozen.
    pub fn forward_last_rows(
        &self,
        tokens: Tensor<2, Int>,
        shift: Option<Tensor<3>>,
        rows: &[u32],
        cache: &mut DecoderCache,
    ) -> Result<Tensor<2>, WhisperError> {
        let [vocab, _] = self.embed_tokens.dims();
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= vocab) {
            return Err(WhisperError::Input(format!(
                "readout token {bad} is outside the vocabulary of {vocab}"
            )));
        }
        if rows.is_empty() {
            return Err(WhisperError::Input("no readout tokens given".into()));
        }
        let hidden = self.hidden_shifted(tokens, shift, cache)?;
        let [b, t, d] = hidden.dims();
        let last = hidden.slice(s![.., t - 1..t, ..]).reshape([b, d]);
        let device = last.device();
        let w = match &self.proj_out {
            Some(p) => select_rows(p.val(), rows),
            None => self.embed_tokens.rows(rows, &device),
        };
        Ok(last.matmul(w.transpose()))
    }

    /// How many of the layers' matrices are held in f16 (see `DecoderLayer::hold_f16`:
    /// eight a layer on the CPU backend with an f16 checkpoint).
    pub fn f16_matrices(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| {
                l.self_attn
                    .projections()
                    .into_iter()
                    .chain(l.encoder_attn.projections())
                    .chain(l.mlp.projections())
            })
            .filter(|dense| dense.is_f16())
            .count()
    }

    /// True when the token embedding (and tied output projection) is held in the
    /// checkpoint's half precision ([`TokenEmbedding`]).
    pub fn embedding_is_half(&self) -> bool {
        self.embed_tokens.is_half()
    }

    /// Final hidden states `[batch, new, d]` (after the last LayerNorm).
    fn hidden(
        &self,
        tokens: Tensor<2, Int>,
        cache: &mut DecoderCache,
    ) -> Result<Tensor<3>, WhisperError> {
        self.hidden_shifted(tokens, None, cache)
    }

    /// [`hidden`](Self::hidden) with an optional shift of the input embeddings.
    fn hidden_shifted(
        &self,
        tokens: Tensor<2, Int>,
        shift: Option<Tensor<3>>,
        cache: &mut DecoderCache,
    ) -> Result<Tensor<3>, WhisperError> {
        let [batch, new] = tokens.dims();
        if let Some(shift) = &shift
            && shift.dims() != [batch, new, self.embed_tokens.dims()[1]]
        {
            return Err(WhisperError::Input(format!(
                "embedding shift of shape {:?} for {batch}x{new} tokens of width {}",
                shift.dims(),
                self.embed_tokens.dims()[1]
            )));
        }
        let [max_pos, _] = self.embed_positions.dims();
        if new == 0 {
            return Err(WhisperError::Input("no decoder tokens given".into()));
        }
        if cache.len + new > max_pos {
            return Err(WhisperError::Input(format!(
                "decoder sequence of {} tokens exceeds max_target_positions {max_pos}",
                cache.len + new
            )));
        }
        if let Some(first) = cache.layers.first() {
            let cached_batch = first.states.dims()[0];
            if cached_batch != batch {
                return Err(WhisperError::Input(format!(
                    "{batch} token rows for a cache of {cached_batch} utterances"
                )));
            }
        }
        let pos = self
            .embed_positions
            .val()
            .slice(s![cache.len..cache.len + new, ..])
            .unsqueeze_dim::<3>(0);
        let mut x = self.embed_tokens.forward(tokens) + pos;
        if let Some(shift) = shift {
            x = x + shift;
        }
        let few = self.layers.first().is_some_and(|l| {
            let frames = cache.layers[0].states.dims()[1];
            let [_, _, d] = x.dims();
            few_queries_for_states(cache.len + new, frames, d, l.encoder_attn.n_heads)
        });
        for (layer, lc) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer.forward(x, lc, few);
        }
        cache.len += new;
        Ok(self.layer_norm.forward(x))
    }

    /// Vocabulary logits of hidden states (tied or separate output projection).
    fn project(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.proj_out {
            Some(p) => project_rows(hidden, p.val()),
            None => self.embed_tokens.project(hidden),
        }
    }
}
