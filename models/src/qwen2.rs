//! Llama-family causal language models: Qwen2 (`Qwen2ForCausalLM`, the decoder of
//! Qwen2-Audio) and Llama/Mistral (`LlamaForCausalLM`, the decoder of Voxtral).
//! RMSNorm, rotary positions (rotate-half), grouped-query attention (q/k/v biases for
//! Qwen2, none for Llama unless `attention_bias`), optional explicit `head_dim`, SwiGLU
//! MLP, optional tied output head. Weights by HF name, KV cache for decoding.
//!
//! Sliding-window attention (`use_sliding_window`) and RoPE scaling are not implemented
//! and are rejected by [`Qwen2Config::validate`].

use std::path::Path;

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use serde::{Deserialize, Serialize};

use crate::nn::{KeyValue, RmsNorm, Rope, SwiGluMlp, load_embedding, load_linear, repeat_kv};
use crate::safetensors_load::{LoadError, TensorStore, read_json};
use burn::nn::{Embedding, Linear};

/// Errors of the Qwen2 model.
#[derive(Debug, thiserror::Error)]
pub enum Qwen2Error {
    /// Loading config or weights failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The input does not fit the model.
    #[error("invalid Qwen2 input: {0}")]
    Input(String),
}

/// `Qwen2Config` fields that change the computation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// MLP hidden size.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: usize,
    /// Longest sequence (size of the RoPE tables).
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (older configs: top level; transformers 5: `rope_parameters.rope_theta`).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// transformers 5 RoPE parameters.
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    /// Legacy RoPE scaling block; only `null` is supported.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// Whether `lm_head` shares the token embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Sliding-window attention; only `false` is supported.
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Activation; only `silu`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// `qwen2`, `llama`, `mistral`, … (decides the default of `attention_bias`).
    #[serde(default)]
    pub model_type: Option<String>,
    /// Explicit head size (Mistral/Voxtral); default `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Biases on q/k/v projections; default true for Qwen2, false otherwise.
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// Biases on MLP projections; only `false` is supported.
    #[serde(default)]
    pub mlp_bias: bool,
}

fn default_max_pos() -> usize {
    32_768
}
fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}

impl Qwen2Config {
    /// Reads and validates `config.json` (or the `text_config` object of a multimodal one
    /// when given as JSON via `serde_json::from_value`).
    pub fn from_file(path: &Path) -> Result<Self, LoadError> {
        let c: Self = read_json(path)?;
        c.validate().map_err(|message| LoadError::Json {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(c)
    }

    /// RoPE base from whichever place the config keeps it (default 10 000).
    pub fn theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(serde_json::Value::as_f64)
            .or(self.rope_theta)
            .unwrap_or(10_000.0)
    }

    /// Size of each attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Whether q/k/v projections have biases.
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias
            .unwrap_or(self.model_type.as_deref().is_none_or(|t| t == "qwen2"))
    }

    /// Rejects what this implementation would compute differently from the reference.
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden_act != "silu" {
            return Err(format!("hidden_act `{}` is not supported", self.hidden_act));
        }
        if self.use_sliding_window {
            return Err("use_sliding_window = true is not supported".into());
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err("rope_scaling is not supported".into());
        }
        if let Some(kind) = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_type"))
            .and_then(serde_json::Value::as_str)
            && kind != "default"
        {
            return Err(format!("rope_type `{kind}` is not supported"));
        }
        if self.num_attention_heads == 0
            || self.num_key_value_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
            || !self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "hidden {} / heads {} / kv heads {} do not divide",
                self.hidden_size, self.num_attention_heads, self.num_key_value_heads
            ));
        }
        Ok(())
    }
}

/// Grouped-query self-attention with rotary positions.
#[derive(Module, Debug)]
pub struct Qwen2Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    n_kv_heads: usize,
}

impl Qwen2Attention {
    fn load(store: &mut TensorStore, prefix: &str, c: &Qwen2Config, device: &Device) -> Self {
        let (d, hd, bias) = (c.hidden_size, c.head_dim(), c.qkv_bias());
        Self {
            q_proj: load_linear(
                store,
                &format!("{prefix}.q_proj"),
                d,
                c.num_attention_heads * hd,
                bias,
                device,
            ),
            k_proj: load_linear(
                store,
                &format!("{prefix}.k_proj"),
                d,
                c.num_key_value_heads * hd,
                bias,
                device,
            ),
            v_proj: load_linear(
                store,
                &format!("{prefix}.v_proj"),
                d,
                c.num_key_value_heads * hd,
                bias,
                device,
            ),
            o_proj: load_linear(
                store,
                &format!("{prefix}.o_proj"),
                c.num_attention_heads * hd,
                d,
                false,
                device,
            ),
            n_heads: c.num_attention_heads,
            n_kv_heads: c.num_key_value_heads,
        }
    }

    fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        offset: usize,
        cache: &mut Option<KeyValue>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let hd = self.q_proj.weight.dims()[1] / self.n_heads;
        let heads = |y: Tensor<3>, n: usize| y.reshape([b, t, n, hd]).swap_dims(1, 2);
        let q = rope.apply(heads(self.q_proj.forward(x.clone()), self.n_heads), offset);
        let k = rope.apply(
            heads(self.k_proj.forward(x.clone()), self.n_kv_heads),
            offset,
        );
        let v = heads(self.v_proj.forward(x), self.n_kv_heads);
        let kv = match cache.take() {
            Some(old) => KeyValue {
                k: Tensor::cat(vec![old.k, k], 2),
                v: Tensor::cat(vec![old.v, v], 2),
            },
            None => KeyValue { k, v },
        };
        let rep = self.n_heads / self.n_kv_heads;
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        let ctx = attention(
            q,
            repeat_kv(kv.k.clone(), rep),
            repeat_kv(kv.v.clone(), rep),
            None,
            None,
            options,
        );
        *cache = Some(kv);
        self.o_proj
            .forward(ctx.swap_dims(1, 2).reshape([b, t, self.n_heads * hd]))
    }
}

/// One pre-norm decoder layer.
#[derive(Module, Debug)]
pub struct Qwen2Layer {
    input_layernorm: RmsNorm,
    self_attn: Qwen2Attention,
    post_attention_layernorm: RmsNorm,
    mlp: SwiGluMlp,
}

/// Decoding state: per-layer keys/values and the number of positions seen.
#[derive(Debug, Clone, Default)]
pub struct Qwen2Cache {
    layers: Vec<Option<KeyValue>>,
    len: usize,
}

impl Qwen2Cache {
    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// `Qwen2ForCausalLM`.
#[derive(Module, Debug)]
pub struct Qwen2 {
    embed_tokens: Embedding,
    layers: Vec<Qwen2Layer>,
    norm: RmsNorm,
    /// `[in, out]` head; `None` = tied to `embed_tokens`.
    lm_head: Option<Linear>,
    #[module(skip)]
    rope: Rope,
}

impl Qwen2 {
    /// Loads `config.json` + safetensors from a HF directory.
    pub fn load(dir: &Path, device: &Device) -> Result<(Qwen2Config, Self), Qwen2Error> {
        let config = Qwen2Config::from_file(&dir.join("config.json"))?;
        let store = TensorStore::from_dir(dir)?;
        let model = Self::from_store(&config, store, "model", "lm_head", device)?;
        Ok((config, model))
    }

    /// Builds the model from HF names under `prefix` (`model` for `Qwen2ForCausalLM`,
    /// `language_model.model` inside Qwen2-Audio) and `head` (`lm_head`).
    pub fn from_store(
        c: &Qwen2Config,
        mut store: TensorStore,
        prefix: &str,
        head: &str,
        device: &Device,
    ) -> Result<Self, Qwen2Error> {
        let model = Self::load_parts(c, &mut store, prefix, head, device)?;
        store.finish()?;
        Ok(model)
    }

    /// Like [`from_store`](Self::from_store) but leaves the store open for the other
    /// parts of a multimodal checkpoint.
    pub fn load_parts(
        c: &Qwen2Config,
        store: &mut TensorStore,
        prefix: &str,
        head: &str,
        device: &Device,
    ) -> Result<Self, Qwen2Error> {
        c.validate().map_err(Qwen2Error::Input)?;
        let d = c.hidden_size;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let p = format!("{prefix}.layers.{i}");
                Qwen2Layer {
                    input_layernorm: RmsNorm::load(
                        store,
                        &format!("{p}.input_layernorm"),
                        d,
                        c.rms_norm_eps,
                        device,
                    ),
                    self_attn: Qwen2Attention::load(store, &format!("{p}.self_attn"), c, device),
                    post_attention_layernorm: RmsNorm::load(
                        store,
                        &format!("{p}.post_attention_layernorm"),
                        d,
                        c.rms_norm_eps,
                        device,
                    ),
                    mlp: SwiGluMlp::load(
                        store,
                        &format!("{p}.mlp"),
                        d,
                        c.intermediate_size,
                        device,
                    ),
                }
            })
            .collect();
        let lm_head = if c.tie_word_embeddings {
            store.ignore(&format!("{head}.weight"));
            None
        } else {
            Some(load_linear(store, head, d, c.vocab_size, false, device))
        };
        Ok(Self {
            embed_tokens: load_embedding(
                store,
                &format!("{prefix}.embed_tokens"),
                c.vocab_size,
                d,
                device,
            ),
            layers,
            norm: RmsNorm::load(store, &format!("{prefix}.norm"), d, c.rms_norm_eps, device),
            lm_head,
            rope: Rope::new(
                c.head_dim(),
                c.max_position_embeddings.min(8192),
                c.theta(),
                device,
            ),
        })
    }

    /// Token embeddings `[b, t, d]` (to be mixed with audio embeddings by ALMs).
    pub fn embed(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.embed_tokens.forward(tokens)
    }

    /// Runs the decoder on input embeddings `[b, t, d]` after the cached positions and
    /// returns logits `[b, t, vocab]`.
    pub fn forward_embeds(
        &self,
        x: Tensor<3>,
        cache: &mut Qwen2Cache,
    ) -> Result<Tensor<3>, Qwen2Error> {
        let [_, t, _] = x.dims();
        if cache.len + t > self.rope.max_positions() {
            return Err(Qwen2Error::Input(format!(
                "sequence of {} positions exceeds the {} supported",
                cache.len + t,
                self.rope.max_positions()
            )));
        }
        if cache.layers.is_empty() {
            cache.layers = vec![None; self.layers.len()];
        }
        let mut x = x;
        for (layer, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let h = layer.self_attn.forward(
                layer.input_layernorm.forward(x.clone()),
                &self.rope,
                cache.len,
                kv,
            );
            x = x + h;
            x = x.clone() + layer.mlp.forward(layer.post_attention_layernorm.forward(x));
        }
        cache.len += t;
        let x = self.norm.forward(x);
        Ok(match &self.lm_head {
            Some(head) => head.forward(x),
            None => crate::whisper::project_rows(x, self.embed_tokens.weight.val()),
        })
    }

    /// Runs the decoder on token ids `[b, t]`.
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        cache: &mut Qwen2Cache,
    ) -> Result<Tensor<3>, Qwen2Error> {
        let x = self.embed(tokens);
        self.forward_embeds(x, cache)
    }
}
