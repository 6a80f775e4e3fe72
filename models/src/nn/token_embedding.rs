//! A token embedding that also serves as the tied output projection (Whisper), kept in
//! the checkpoint's half precision on the CPU backend.
//!
//! Why: Whisper base's embedding is 51,865 × 512, 106 MB in f32 and the largest tensor
//! of the model, while scoring reads a handful of its rows (the prompt's tokens on the
//! way in, the label tokens on the way out). Checkpoints store it in f16 (or bf16) and
//! every half value converts to f32 exactly, so holding the half values and converting
//! the rows a call needs feeds every matmul the same f32 numbers as the f32 tensor did,
//! in half the memory. Only a full-vocabulary projection (greedy decoding, full-row
//! scorers) converts the whole matrix, a block of rows at a time. Off the CPU backend,
//! and for f32 checkpoints, the weights stay in burn's `Embedding`.

use std::sync::Arc;

use burn::module::Param;
use burn::nn::Embedding;
use burn::prelude::*;
use half::slice::HalfFloatSliceExt;

use super::is_flex;
use crate::safetensors_load::{HalfValues, TensorStore};

/// Vocabulary rows converted to f32 at a time by a full projection (8 MB for d = 512).
const PROJECT_ROWS: usize = 4096;

/// Rows `ids` of `matrix` `[ids.len(), d]`, in that order (e.g. the label tokens' rows
/// of an output projection).
pub fn select_rows(matrix: Tensor<2>, ids: &[u32]) -> Tensor<2> {
    let index: Vec<i64> = ids.iter().map(|&r| i64::from(r)).collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [ids.len()]), &matrix.device());
    matrix.select(0, index)
}

/// `[vocab, d]` token embedding (see the module documentation).
#[derive(Module, Debug)]
pub struct TokenEmbedding {
    /// burn's embedding: the f32 weights, or a 1×1 placeholder when `half` holds them.
    embedding: Embedding,
    /// The weights in half precision, on the CPU backend for a half checkpoint.
    #[module(skip)]
    half: Option<Arc<HalfMatrix>>,
}

/// Row-major `[rows, d]` half values.
#[derive(Debug)]
struct HalfMatrix {
    d: usize,
    values: HalfValues,
}

impl HalfMatrix {
    fn rows(&self) -> usize {
        self.values.len() / self.d.max(1)
    }

    /// Writes rows `first..first + out.len() / d` into `out` as f32 (exact).
    fn convert(&self, first: usize, out: &mut [f32]) {
        let range = first * self.d..first * self.d + out.len();
        match &self.values {
            HalfValues::F16(v) => v[range].convert_to_f32_slice(out),
            HalfValues::Bf16(v) => v[range].convert_to_f32_slice(out),
        }
    }
}

impl TokenEmbedding {
    /// Loads `{prefix}.weight` `[n, d]`: as half values on the CPU backend when the
    /// checkpoint stores it in f16 or bf16, as an f32 `Embedding` otherwise.
    pub fn load(
        store: &mut TensorStore,
        prefix: &str,
        n: usize,
        d: usize,
        device: &Device,
    ) -> Self {
        let name = format!("{prefix}.weight");
        if is_flex(device)
            && let Some(values) = store.take_half(&name, &[n, d])
        {
            return Self {
                embedding: Embedding {
                    weight: Param::from_tensor(Tensor::zeros([1, 1], device)),
                },
                half: Some(Arc::new(HalfMatrix { d, values })),
            };
        }
        Self {
            embedding: super::load_embedding(store, prefix, n, d, device),
            half: None,
        }
    }

    /// `[vocab, d]`.
    pub fn dims(&self) -> [usize; 2] {
        match &self.half {
            Some(h) => [h.rows(), h.d],
            None => self.embedding.weight.dims(),
        }
    }

    /// True when the weights are held in half precision.
    pub fn is_half(&self) -> bool {
        self.half.is_some()
    }

    /// Embeddings of `tokens` `[batch, seq]`: `[batch, seq, d]`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let Some(h) = &self.half else {
            return self.embedding.forward(tokens);
        };
        let device = tokens.device();
        let [b, t] = tokens.dims();
        let ids: Vec<u32> = tokens
            .into_data()
            .iter::<i64>()
            .map(|id| u32::try_from(id).unwrap_or(u32::MAX))
            .collect();
        let values = self.gather(h, &ids);
        Tensor::from_data(TensorData::new(values, [b, t, h.d]), &device)
    }

    /// Rows `ids` of the matrix `[ids.len(), d]` in that order, e.g. the label tokens'
    /// rows of the output projection. Every id must be below the vocabulary size.
    pub fn rows(&self, ids: &[u32], device: &Device) -> Tensor<2> {
        let Some(h) = &self.half else {
            return select_rows(self.embedding.weight.val(), ids);
        };
        let values = self.gather(h, ids);
        Tensor::from_data(TensorData::new(values, [ids.len(), h.d]), device)
    }

    /// `hidden @ Wᵀ`: the logits of every vocabulary row, `[b, t, vocab]`.
    pub fn project(&self, hidden: Tensor<3>) -> Tensor<3> {
        let Some(h) = &self.half else {
            return crate::whisper::project_rows(hidden, self.embedding.weight.val());
        };
        let [b, t, d] = hidden.dims();
        let device = hidden.device();
        let x = hidden.reshape([b * t, d]).transpose();
        let vocab = h.rows();
        let parts: Vec<Tensor<2>> = (0..vocab)
            .step_by(PROJECT_ROWS)
            .map(|first| {
                let n = PROJECT_ROWS.min(vocab - first);
                let mut w = vec![0.0f32; n * d];
                h.convert(first, &mut w);
                let w = Tensor::<2>::from_data(TensorData::new(w, [n, d]), &device);
                w.matmul(x.clone())
            })
            .collect();
        Tensor::cat(parts, 0).transpose().reshape([b, t, vocab])
    }

    /// Rows `ids` of `h` as f32, row after row.
    fn gather(&self, h: &HalfMatrix, ids: &[u32]) -> Vec<f32> {
        let vocab = h.rows();
        let mut values = vec![0.0f32; ids.len() * h.d];
        for (&id, out) in ids.iter().zip(values.chunks_exact_mut(h.d.max(1))) {
            let id = id as usize;
            assert!(
                id < vocab,
                "token {id} is outside the vocabulary of {vocab}"
            );
            h.convert(id, out);
        }
        values
    }
}
