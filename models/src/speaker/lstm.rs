//! A stacked unidirectional LSTM with PyTorch's weight layout and gate order (i, f, g, o),
//! batch first, zero initial state, and only what the GE2E encoder needs: the last
//! layer's final hidden state.
//!
//! Why not `burn::nn::Lstm`: it keeps each gate as two separate `Linear`s (eight matmuls a
//! step); here the input projection of a whole layer is one matmul over all time steps.
//!
//! On burn's CPU backend (flex) the steps then run in emomon's own kernel
//! ([`crate::kernels::lstm`]) on host buffers: through burn each step is about a dozen
//! small ops, and their dispatch cost more than the arithmetic (38.7 ms of CPU for a 3 s
//! utterance, against 13.6 ms now). Other devices (wgpu) keep the
//! burn path, one `[B, 256] × [256, 1024]` matmul a step for all four gates.

use burn::prelude::*;
use burn::tensor::activation::{sigmoid, tanh};

use crate::kernels::Isa;
use crate::kernels::lstm::Recurrence;
use crate::nn::{is_flex, transposed};
use crate::safetensors_load::TensorStore;

/// One layer: `W_ihᵀ` `[in, 4H]`, `W_hhᵀ` `[H, 4H]`, `b_ih + b_hh` `[1, 4H]`, and on the
/// CPU `W_hh` packed for the kernel.
#[derive(Debug, Clone)]
struct Layer {
    w_ih: Tensor<2>,
    w_hh: Tensor<2>,
    bias: Tensor<2>,
    cpu: Option<Recurrence>,
}

/// `torch.nn.LSTM(input, hidden, layers, batch_first=True)`.
#[derive(Debug, Clone)]
pub struct Lstm {
    layers: Vec<Layer>,
    hidden: usize,
}

impl Layer {
    /// From `W_ihᵀ` `[in, 4H]` and `W_hhᵀ` `[H, 4H]` row-major and the summed bias `[4H]`.
    fn new(
        w_ih_t: Vec<f32>,
        w_hh_t: Vec<f32>,
        bias: Tensor<1>,
        hidden: usize,
        device: &Device,
    ) -> Self {
        let gates = 4 * hidden;
        let d_in = w_ih_t.len() / gates.max(1);
        let cpu = is_flex(device).then(|| Recurrence::new(&w_hh_t, hidden));
        Self {
            w_ih: Tensor::from_data(TensorData::new(w_ih_t, [d_in, gates]), device),
            w_hh: Tensor::from_data(TensorData::new(w_hh_t, [hidden, gates]), device),
            bias: bias.reshape([1, gates]),
            cpu,
        }
    }

    /// Every time step's input projection in one matmul: `x · W_ihᵀ + b` for `x`
    /// `[B, T, in]`, as `[B·T, 4H]`.
    fn project(&self, x: Tensor<3>) -> Tensor<2> {
        let [batch, steps, d_in] = x.dims();
        x.reshape([batch * steps, d_in]).matmul(self.w_ih.clone()) + self.bias.clone()
    }
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
                    store
                        .take_vec(&format!("{prefix}.{name}_l{k}"), &[gates, cols])
                        .map_or_else(|| vec![0.0; gates * cols], |w| transposed(&w, gates, cols))
                };
                let (w_ih_t, w_hh_t) = (matrix("weight_ih", d_in), matrix("weight_hh", hidden));
                let b_ih = store.take::<1>(&format!("{prefix}.bias_ih_l{k}"), [gates], device);
                let b_hh = store.take::<1>(&format!("{prefix}.bias_hh_l{k}"), [gates], device);
                Layer::new(w_ih_t, w_hh_t, b_ih + b_hh, hidden, device)
            })
            .collect();
        Self { layers, hidden }
    }

    /// The last layer's hidden state after the last step, `[B, H]`, for input `[B, T, in]`:
    /// with emomon's kernel on the CPU, with burn elsewhere.
    pub fn final_hidden(&self, input: Tensor<3>) -> Tensor<2> {
        if self.layers.iter().all(|l| l.cpu.is_some()) {
            self.final_hidden_cpu(input, crate::kernels::isa())
        } else {
            self.final_hidden_burn(input)
        }
    }

    /// [`final_hidden`](Self::final_hidden) through [`Recurrence`] on instruction set `isa`
    /// (the model must have been loaded on the CPU).
    fn final_hidden_cpu(&self, input: Tensor<3>, isa: Isa) -> Tensor<2> {
        let [batch, steps, _] = input.dims();
        let device = input.device();
        let h_dim = self.hidden;
        let mut x = input;
        let mut last = vec![0.0f32; batch * h_dim];
        for (k, layer) in self.layers.iter().enumerate() {
            let Some(recurrence) = &layer.cpu else {
                unreachable!("final_hidden_cpu runs only on a model loaded on the CPU")
            };
            let projected = layer.project(x.clone()).into_data();
            let projected = match projected.as_slice::<f32>() {
                Ok(values) => values,
                Err(e) => unreachable!("an f32 tensor's data is f32: {e:?}"),
            };
            if k + 1 < self.layers.len() {
                let mut outputs = vec![0.0f32; batch * steps * h_dim];
                recurrence.run_with(projected, batch, steps, Some(&mut outputs), isa);
                x = Tensor::from_data(TensorData::new(outputs, [batch, steps, h_dim]), &device);
            } else {
                last = recurrence.run_with(projected, batch, steps, None, isa);
            }
        }
        Tensor::from_data(TensorData::new(last, [batch, h_dim]), &device)
    }

    /// [`final_hidden`](Self::final_hidden) as burn ops, one batched matmul a step.
    fn final_hidden_burn(&self, input: Tensor<3>) -> Tensor<2> {
        let [batch, steps, _] = input.dims();
        let h_dim = self.hidden;
        let device = input.device();
        let mut x = input;
        let mut last = Tensor::zeros([batch, h_dim], &device);
        for (k, layer) in self.layers.iter().enumerate() {
            let keep_outputs = k + 1 < self.layers.len();
            let projected = layer.project(x.clone()).reshape([batch, steps, 4 * h_dim]);
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
    use super::*;
    use crate::kernels::lstm::tests::values;

    /// A stacked LSTM on flex with deterministic weights of a few times PyTorch's initial scale (±2/√H), so that even one step leaves a state far from zero.
    fn lstm(input: usize, hidden: usize, layers: usize) -> Lstm {
        let device = Device::flex();
        let amp = 2.0 / (hidden as f32).sqrt();
        let layers = (0..layers)
            .map(|k| {
                let d_in = if k == 0 { input } else { hidden };
                let seed = 0.13 + k as f32 * 0.07;
                let bias = Tensor::from_data(
                    TensorData::new(values(4 * hidden, seed * 3.0, amp), [4 * hidden]),
                    &device,
                );
                Layer::new(
                    values(d_in * 4 * hidden, seed, amp),
                    values(hidden * 4 * hidden, seed * 1.9, amp),
                    bias,
                    hidden,
                    &device,
                )
            })
            .collect();
        Lstm { layers, hidden }
    }

    #[test]
    fn the_cpu_kernel_matches_the_burn_path() {
        // (batch, steps, input, hidden, layers): batch 1, one step, hidden not a multiple
        // of the SIMD width, long runs, and the speaker encoder's own shape.
        let shapes = [
            (1, 1, 40, 256, 3),
            (1, 17, 5, 9, 2),
            (3, 1, 40, 33, 3),
            (2, 300, 7, 70, 2),
            (3, 160, 40, 256, 3),
        ];
        let device = Device::flex();
        for (batch, steps, input, hidden, layers) in shapes {
            let model = lstm(input, hidden, layers);
            let x = values(batch * steps * input, 0.31, 2.0);
            let x = || {
                Tensor::<3>::from_data(TensorData::new(x.clone(), [batch, steps, input]), &device)
            };
            let want: Vec<f32> = model
                .final_hidden_burn(x())
                .into_data()
                .try_into_vec::<f32>()
                .expect("f32");
            let peak = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(
                peak > 0.02,
                "{batch}×{steps}×{input}→{hidden}: a live state to compare ({peak})"
            );
            let run = |isa: Isa| -> Vec<f32> {
                model
                    .final_hidden_cpu(x(), isa)
                    .into_data()
                    .try_into_vec::<f32>()
                    .expect("f32")
            };
            for isa in Isa::available() {
                let err = run(isa)
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    err <= 1e-5,
                    "{batch}×{steps}×{input}→{hidden}×{layers}, {}: max difference {err}",
                    isa.name()
                );
            }
            // On flex, `final_hidden` is the kernel at the chosen instruction set.
            let chosen: Vec<f32> = model
                .final_hidden(x())
                .into_data()
                .try_into_vec::<f32>()
                .expect("f32");
            assert_eq!(chosen, run(crate::kernels::isa()));
        }
    }
}
