//! A stacked unidirectional LSTM with PyTorch's weight layout and gate order (i, f, g, o),
//! batch first, zero initial state, and only what the GE2E encoder needs: the last
//! layer's final hidden state.
//!
//! Why not `burn::nn::Lstm`: it keeps each gate as two separate `Linear`s (eight matmuls a
//! step); here the input projection of a whole layer is one matmul over all time steps,
//! and each step is one `[B, 256] × [256, 1024]` matmul for all four gates.

use burn::prelude::*;
use burn::tensor::activation::{sigmoid, tanh};

use crate::safetensors_load::TensorStore;

/// One layer: `W_ihᵀ` `[in, 4H]`, `W_hhᵀ` `[H, 4H]`, `b_ih + b_hh` `[1, 4H]`.
#[derive(Debug, Clone)]
struct Layer {
    w_ih: Tensor<2>,
    w_hh: Tensor<2>,
    bias: Tensor<2>,
}

/// `torch.nn.LSTM(input, hidden, layers, batch_first=True)`.
#[derive(Debug, Clone)]
pub struct Lstm {
    layers: Vec<Layer>,
    hidden: usize,
}

/// `[rows, cols]` row-major → its transpose, contiguous.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = values[r * cols + c];
        }
    }
    t
}

impl Lstm {
    /// Reads `{prefix}.weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`;
    /// problems are recorded in `store` (see [`TensorStore::finish`]).
    pub fn load(
        store: &mut TensorStore,
        prefix: &str,
        input: usize,
        hidden: usize,
        layers: usize,
        device: &Device,
    ) -> Self {
        let gates = 4 * hidden;
        let layers = (0..layers)
            .map(|k| {
                let d_in = if k == 0 { input } else { hidden };
                let mut matrix = |name: &str, cols: usize| {
                    let values = store
                        .take_vec(&format!("{prefix}.{name}_l{k}"), &[gates, cols])
                        .map_or_else(|| vec![0.0; gates * cols], |w| transpose(&w, gates, cols));
                    Tensor::from_data(TensorData::new(values, [cols, gates]), device)
                };
                let (w_ih, w_hh) = (matrix("weight_ih", d_in), matrix("weight_hh", hidden));
                let b_ih = store.take::<1>(&format!("{prefix}.bias_ih_l{k}"), [gates], device);
                let b_hh = store.take::<1>(&format!("{prefix}.bias_hh_l{k}"), [gates], device);
                Layer {
                    w_ih,
                    w_hh,
                    bias: (b_ih + b_hh).reshape([1, gates]),
                }
            })
            .collect();
        Self { layers, hidden }
    }

    /// The last layer's hidden state after the last step, `[B, H]`, for input `[B, T, in]`.
    pub fn final_hidden(&self, input: Tensor<3>) -> Tensor<2> {
        let [batch, steps, _] = input.dims();
        let h_dim = self.hidden;
        let device = input.device();
        let mut x = input;
        let mut last = Tensor::zeros([batch, h_dim], &device);
        for (k, layer) in self.layers.iter().enumerate() {
            let keep_outputs = k + 1 < self.layers.len();
            let [_, _, d_in] = x.dims();
            // All time steps' input projections in one matmul: [B·T, 4H] → [B, T, 4H].
            let projected = (x
                .clone()
                .reshape([batch * steps, d_in])
                .matmul(layer.w_ih.clone())
                + layer.bias.clone())
            .reshape([batch, steps, 4 * h_dim]);
            let mut h = Tensor::<2>::zeros([batch, h_dim], &device);
            let mut c = Tensor::<2>::zeros([batch, h_dim], &device);
            let mut outputs = Vec::with_capacity(if keep_outputs { steps } else { 0 });
            for (t, step) in projected.iter_dim(1).enumerate() {
                let gates = step.reshape([batch, 4 * h_dim]) + h.matmul(layer.w_hh.clone());
                let act = sigmoid(gates.clone());
                let i = act.clone().slice(s![.., 0..h_dim]);
                let f = act.clone().slice(s![.., h_dim..2 * h_dim]);
                let o = act.slice(s![.., 3 * h_dim..4 * h_dim]);
                let g = tanh(gates.slice(s![.., 2 * h_dim..3 * h_dim]));
                c = f * c + i * g;
                h = o * tanh(c.clone());
                if keep_outputs {
                    outputs.push(h.clone().reshape([batch, 1, h_dim]));
                } else if t + 1 == steps {
                    last = h.clone();
                }
            }
            if keep_outputs {
                x = Tensor::cat(outputs, 1);
            }
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
