//! A linear layer that runs in f32 through burn, or, once quantised on the CPU backend,
//! through emomon's grouped int8 kernel ([`crate::kernels::q8`]: one scale per 32
//! inputs on both sides).
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
use crate::kernels::q8::Q8Matrix;

/// `y = x · W + b` over the last dimension of `x`.
#[derive(Module, Debug)]
pub struct Dense {
    /// The f32 layer (its weight is released once quantised; see [`Dense::quantize_q8`]).
    pub linear: Linear,
    /// The int8 weight and the bias as a plain vector, when quantised.
    #[module(skip)]
    q8: Option<Arc<Q8Linear>>,
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
        Self { linear, q8: None }
    }

    /// Quantises the weight to int8 (symmetric, one scale per group of 32 inputs of each
    /// output channel) for the int8 kernel, and releases the f32 weight (the layer then
    /// holds 1.125 bytes a weight instead of 4).
    /// Returns false, changing nothing, off the CPU backend, where burn's own block
    /// quantisation ([`crate::quant::quantize_linears`]) is used instead.
    pub fn quantize_q8(&mut self) -> bool {
        let weight = self.linear.weight.val();
        let device = weight.device();
        if self.q8.is_some() || !is_flex(&device) || weight.dtype() != DType::F32 {
            return false;
        }
        let [k, n] = weight.dims();
        let Ok(values) = weight.into_data().try_into_vec::<f32>() else {
            return false;
        };
        let bias = match &self.linear.bias {
            Some(b) => match b.val().into_data().try_into_vec::<f32>() {
                Ok(b) => Some(b),
                Err(_) => return false,
            },
            None => None,
        };
        let weight = Q8Matrix::from_in_out(&values, k, n);
        self.q8 = Some(Arc::new(Q8Linear { weight, bias }));
        // A 1×1 placeholder: the module keeps its structure, the memory is freed.
        self.linear.weight = Param::from_tensor(Tensor::zeros([1, 1], &device));
        true
    }

    /// True once [`quantize_q8`](Self::quantize_q8) has packed the weight.
    pub fn is_q8(&self) -> bool {
        self.q8.is_some()
    }

    /// Applies the layer.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let Some(q8) = &self.q8 else {
            return self.linear.forward(x);
        };
        let weight = &q8.weight;
        let device = x.device();
        let mut dims = x.dims();
        assert_eq!(
            dims[D - 1],
            weight.k(),
            "input width {} for a {}-input layer",
            dims[D - 1],
            weight.k()
        );
        let m: usize = dims[..D - 1].iter().product();
        let input = match x.into_data().try_into_vec::<f32>() {
            Ok(v) => v,
            Err(e) => unreachable!("a flex f32 tensor reads as f32: {e:?}"),
        };
        let mut out = vec![0.0f32; m * weight.n()];
        weight.matmul(&input, m, q8.bias.as_deref(), &mut out);
        dims[D - 1] = weight.n();
        Tensor::from_data(TensorData::new(out, dims), &device)
    }
}
