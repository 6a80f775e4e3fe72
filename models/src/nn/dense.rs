//! A linear layer that runs in f32 through burn, or, once quantised on the CPU backend,
//! through emomon's grouped int8 kernel ([`crate::kernels::q8`]: one scale per 32
//! inputs on both sides), or, holding f16 weights on the CPU backend, through the
//! few-row f16 kernel ([`crate::kernels::f16`]) for a decoder step's handful of tokens.
//!
//! burn's `Linear` cannot carry a packed int8 matrix, and flex 0.22 has no int8 matmul
//! of its own (its quantised matmul dequantises the whole weight on every call), so the
//! Whisper layers hold this wrapper: the burn `Linear` it starts from (loading, records
//! and the other backends stay burn's), plus the packed weight when `--quant q8` is on.

use std::sync::Arc;

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::DType;

use super::cpu::is_flex;
use super::transposed;
use crate::kernels::f16::{F16Matrix, FEW_ROWS};
use crate::kernels::q8::Q8Matrix;

/// `y = x · W + b` over the last dimension of `x`.
#[derive(Module, Debug)]
pub struct Dense {
    /// The f32 layer (its weight is released once quantised; see [`Dense::quantize_q8`]).
    pub linear: Linear,
    /// The int8 weight and the bias as a plain vector, when quantised.
    #[module(skip)]
    q8: Option<Arc<Q8Linear>>,
    /// The weight in f16 and the bias as a plain vector, when held in half precision.
    #[module(skip)]
    f16: Option<Arc<F16Linear>>,
}

/// A layer's weight `[k, n]` and bias as plain f32 vectors.
struct HostWeights {
    values: Vec<f32>,
    k: usize,
    n: usize,
    bias: Option<Vec<f32>>,
}

/// What the f16 path of a [`Dense`] reads on every call.
#[derive(Debug)]
struct F16Linear {
    weight: F16Matrix,
    bias: Option<Vec<f32>>,
}

/// What the int8 path of a [`Dense`] reads on every call.
#[derive(Debug)]
struct Q8Linear {
    weight: Q8Matrix,
    bias: Option<Vec<f32>>,
}

impl Dense {
    /// Wraps an f32 `Linear`.
    pub fn new(linear: Linear) -> Self {
        Self {
            linear,
            q8: None,
            f16: None,
        }
    }

    /// The weight `[k, n]` in f32 and the bias as plain vectors, on the CPU backend,
    /// unless the layer is quantised (the int8 values are not the model's any more).
    fn f32_weights(&self) -> Option<HostWeights> {
        if let Some(h) = &self.f16 {
            let (k, n) = (h.weight.k(), h.weight.n());
            return Some(HostWeights {
                values: transposed(&h.weight.to_f32(), n, k),
                k,
                n,
                bias: h.bias.clone(),
            });
        }
        let weight = self.linear.weight.val();
        if self.q8.is_some() || !is_flex(&weight.device()) {
            return None;
        }
        if weight.dtype() != DType::F32 {
            return None;
        }
        let [k, n] = weight.dims();
        let values = weight.into_data().try_into_vec::<f32>().ok()?;
        let bias = match &self.linear.bias {
            Some(b) => Some(b.val().into_data().try_into_vec::<f32>().ok()?),
            None => None,
        };
        Some(HostWeights { values, k, n, bias })
    }

    /// Replaces the f32 weight by a 1×1 placeholder once another form holds it: the
    /// module keeps its structure, the memory is freed.
    fn release_f32_weight(&mut self) {
        let device = self.linear.weight.device();
        self.linear.weight = Param::from_tensor(Tensor::zeros([1, 1], &device));
    }

    /// Holds the weight in f16 when every value is an f16 exactly (weights read from an
    /// f16 checkpoint, as Whisper's are), so that calls with at most
    /// [`FEW_ROWS`] rows (a decoder step) read half the bytes through the f16 kernel;
    /// more rows widen it back to f32 for burn's matmul (exact). Returns false, changing
    /// nothing, off the CPU backend, once quantised, or when a value is not an f16.
    pub fn hold_f16(&mut self) -> bool {
        if self.f16.is_some() {
            return false;
        }
        let Some(HostWeights { values, k, n, bias }) = self.f32_weights() else {
            return false;
        };
        let Some(weight) = F16Matrix::from_in_out_exact(&values, k, n) else {
            return false;
        };
        self.f16 = Some(Arc::new(F16Linear { weight, bias }));
        self.release_f32_weight();
        true
    }

    /// The f32 weight `[k, n]` and bias as burn tensors, while the layer holds them
    /// (not once quantised or held in f16).
    pub fn f32_tensors(&self) -> Option<(Tensor<2>, Option<Tensor<1>>)> {
        if self.q8.is_some() || self.f16.is_some() {
            return None;
        }
        Some((
            self.linear.weight.val(),
            self.linear.bias.as_ref().map(|b| b.val()),
        ))
    }

    /// True once [`hold_f16`](Self::hold_f16) holds the weight in f16.
    pub fn is_f16(&self) -> bool {
        self.f16.is_some()
    }

    /// Quantises the weight to int8 (symmetric, one scale per group of 32 inputs of each
    /// output channel) for the int8 kernel, and releases the f32 weight (the layer then
    /// holds 1.125 bytes a weight instead of 4).
    /// Returns false, changing nothing, off the CPU backend, where burn's own block
    /// quantisation ([`crate::quant::quantize_linears`]) is used instead.
    pub fn quantize_q8(&mut self) -> bool {
        let Some(HostWeights { values, k, n, bias }) = self.f32_weights() else {
            return false;
        };
        let weight = Q8Matrix::from_in_out(&values, k, n);
        self.q8 = Some(Arc::new(Q8Linear { weight, bias }));
        self.f16 = None;
        self.release_f32_weight();
        true
    }

    /// True once [`quantize_q8`](Self::quantize_q8) has packed the weight.
    pub fn is_q8(&self) -> bool {
        self.q8.is_some()
    }

    /// The int8 weight and the bias, once quantised: for layers that run whole on host
    /// buffers (see [`crate::nn::host`]).
    pub(crate) fn q8_parts(&self) -> Option<(&Q8Matrix, Option<&[f32]>)> {
        self.q8.as_ref().map(|l| (&l.weight, l.bias.as_deref()))
    }

    /// Applies the layer.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if let Some(q8) = &self.q8 {
            let weight = &q8.weight;
            return apply_host(x, weight.k(), weight.n(), |input, m, out| {
                weight.matmul(input, m, q8.bias.as_deref(), out)
            });
        }
        let Some(h) = &self.f16 else {
            return self.linear.forward(x);
        };
        let (k, n) = (h.weight.k(), h.weight.n());
        let dims = x.dims();
        let m: usize = dims[..D - 1].iter().product();
        if m <= FEW_ROWS {
            return apply_host(x, k, n, |input, m, out| {
                h.weight.matmul(input, m, h.bias.as_deref(), out)
            });
        }
        let device = x.device();
        let w = Tensor::<2>::from_data(TensorData::new(h.weight.to_f32(), [n, k]), &device);
        let mut y = x.reshape([m, k]).matmul(w.transpose());
        if let Some(b) = &h.bias {
            y = y + Tensor::<1>::from_data(TensorData::new(b.clone(), [n]), &device).unsqueeze();
        }
        let mut out_dims = dims;
        out_dims[D - 1] = n;
        y.reshape(out_dims)
    }
}

/// Runs a host kernel `f(input, m, out)` on `x`'s values seen as `[m, k]`, giving
/// `[.., n]` on `x`'s device.
fn apply_host<const D: usize>(
    x: Tensor<D>,
    k: usize,
    n: usize,
    f: impl FnOnce(&[f32], usize, &mut [f32]),
) -> Tensor<D> {
    let device = x.device();
    let mut dims = x.dims();
    assert_eq!(
        dims[D - 1],
        k,
        "input width {} for a {k}-input layer",
        dims[D - 1]
    );
    let m: usize = dims[..D - 1].iter().product();
    let input = match x.into_data().try_into_vec::<f32>() {
        Ok(v) => v,
        Err(e) => unreachable!("a flex f32 tensor reads as f32: {e:?}"),
    };
    let mut out = vec![0.0f32; m * n];
    f(&input, m, &mut out);
    dims[D - 1] = n;
    Tensor::from_data(TensorData::new(out, dims), &device)
}

#[cfg(test)]
mod tests {
    use burn::nn::LinearConfig;

    use super::*;

    /// A layer whose weights and bias are f16 values exactly, as read from an f16
    /// checkpoint.
    fn f16_exact_layer(k: usize, n: usize, device: &Device) -> Dense {
        let exact = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| (((i * 389 + seed) % 1001) as f32 - 500.0) / 1024.0)
                .collect()
        };
        let mut linear = LinearConfig::new(k, n).init(device);
        linear.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(exact(k * n, 3), [k, n]),
            device,
        ));
        linear.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(exact(n, 7), [n]),
            device,
        )));
        Dense::new(linear)
    }

    /// The f16 layer gives the f32 layer's outputs (only the order of additions differs)
    /// through the f16 kernel for few rows and through the widened matmul for more, in
    /// 2 and 3 dimensions.
    #[test]
    fn f16_layer_equals_its_f32_layer_for_few_and_many_rows() {
        let device = Device::flex();
        let (k, n) = (67, 130);
        let f32_layer = f16_exact_layer(k, n, &device);
        let mut held = f32_layer.clone();
        assert!(held.hold_f16(), "exact f16 values are held");
        assert!(held.is_f16() && !held.hold_f16());
        assert_eq!(held.linear.weight.dims(), [1, 1], "f32 weight released");
        for rows in [1, 3, FEW_ROWS, FEW_ROWS + 1, 40] {
            let x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.13).cos()).collect();
            let x2 = Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, k]), &device);
            let want = f32_layer
                .forward(x2.clone())
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            let got = held.forward(x2).into_data().try_into_vec::<f32>().unwrap();
            let x3 = Tensor::<3>::from_data(TensorData::new(x, [1, rows, k]), &device);
            let got3 = held.forward(x3);
            assert_eq!(got3.dims(), [1, rows, n]);
            let got3 = got3.into_data().try_into_vec::<f32>().unwrap();
            for ((w, g), g3) in want.iter().zip(&got).zip(&got3) {
                assert!(
                    (w - g).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{rows} rows: {g} vs {w}"
                );
                assert_eq!(g, g3, "{rows} rows: 2-D and 3-D inputs differ");
            }
        }
    }

    /// Weights that are not f16 values stay f32; a held layer can still be quantised.
    #[test]
    fn only_exact_weights_are_held_and_held_ones_quantise() {
        let device = Device::flex();
        let mut inexact = Dense::new(LinearConfig::new(8, 4).init(&device));
        assert!(!inexact.hold_f16(), "random f32 init is not f16-exact");
        assert!(!inexact.is_f16());
        let mut held = f16_exact_layer(64, 32, &device);
        assert!(held.hold_f16());
        assert!(held.quantize_q8());
        assert!(held.is_q8() && !held.is_f16());
    }
}
