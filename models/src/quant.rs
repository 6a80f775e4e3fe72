//! Optional 8-bit weights (`--quant q8`): the matrices of every `Linear` layer are
//! stored as symmetric int8 with one f32 scale per block of 32 values (burn's
//! `Q8S`, per-block), calibrated by min/max.
//!
//! What is and is not quantised, and why:
//! * `Linear` weights (attention projections, MLPs, projectors, untied LM heads) hold
//!   most of the parameters and tolerate 8 bits well;
//! * embeddings (and so Whisper's tied output projection), convolutions, norms and
//!   biases stay f32: they are small, and the vocabulary projection decides the label
//!   logits directly.
//!
//! On burn's CPU backend (flex 0.22) q8 saves memory (≈4× on the quantised matrices)
//! and costs time: flex has no int8 matmul, so burn's default `q_matmul` dequantises the
//! whole weight to f32 before every matmul, and flex's `dequantize` finds each
//! element's block scale through a multi-dimensional index (≈60 ns an element). Whisper
//! base, 5 s unpadded, first-token, in one run: f32 encoder 148 ms + decoder 47 ms, q8
//! encoder 1338 ms + decoder 1555 ms (19 M and 25 M dequantised weights a pass). Even a
//! dequantisation at memory speed would leave q8 slower than f32 here (the same f32
//! matmul plus the dequantisation); it pays only with an int8 kernel. The scores move by
//! the tolerance stated in `models/tests/parity/quant_fixtures.rs`.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::quantization::{
    Calibration, QuantScheme, QuantValue, ScaleDtype, compute_q_params, compute_range,
};

/// Elements per quantisation block (one scale each).
pub const BLOCK: usize = 32;

/// Maps a module, quantising the weights of its `Linear` layers.
struct LinearQuantizer {
    containers: Vec<String>,
    scheme: QuantScheme,
    quantized: usize,
}

impl ModuleMapper for LinearQuantizer {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.containers.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let in_linear = self.containers.last().is_some_and(|c| c == "Struct:Linear");
        // Only whole matrices whose rows split into blocks (biases are 1-D).
        if D != 2 || !in_linear {
            return param;
        }
        let dims = param.val().dims();
        if !dims[D - 1].is_multiple_of(BLOCK) {
            return param;
        }
        self.quantized += 1;
        let scheme = self.scheme;
        param.map(|tensor| {
            let range = compute_range(&scheme, &tensor, &Calibration::MinMax);
            let qparams = compute_q_params(&scheme, range);
            tensor.quantize(&scheme, qparams)
        })
    }
}

/// `module` with its `Linear` weights quantised to 8 bits; also returns how many
/// matrices were quantised.
pub fn quantize_linears<M: Module>(module: M, device: &Device) -> (M, usize) {
    let scheme = device
        .settings()
        .quantization
        .scheme
        .with_value(QuantValue::Q8S)
        .per_block([BLOCK as u8], ScaleDtype::F32);
    let mut mapper = LinearQuantizer {
        containers: Vec::new(),
        scheme,
        quantized: 0,
    };
    let module = module.map(&mut mapper);
    (module, mapper.quantized)
}
