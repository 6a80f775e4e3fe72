//! Optional 8-bit weights (`--quant q8`), two ways:
//!
//! * on the CPU backend (flex), the Whisper family (every Whisper checkpoint and the
//!   default model): the encoder's linear layers quantised once to int8 with one
//!   symmetric scale per (group of 32 inputs, output channel), activations per (token,
//!   group of 32) at run time, the matmul in emomon's integer kernels
//!   ([`crate::kernels::q8`]: AVX-512 VNNI, AVX2 or scalar) with the scales applied per
//!   group ([`crate::whisper::Whisper::quantize_q8`]); the f32 weights are released
//!   (1.125 bytes a weight instead of 4). The decoder stays f32: its rounding reaches
//!   the label logits directly (0.36 with it in int8, over the 0.25 guard, in
//!   `scripts/q8_error_sim.py`), and with the first-token readout it runs only the
//!   prompt's few positions.
//! * elsewhere (wgpu; the chat models on every backend): the matrices of every
//!   `Linear` layer are stored as burn's `Q8S` with one f32 scale per block of 32 values,
//!   calibrated by min/max ([`quantize_linears`]). burn's default `q_matmul` dequantises
//!   the whole weight to f32 before every matmul: this saves memory and, on flex, costs
//!   time (Whisper base, 5 s: f32 encoder 148 ms + decoder 47 ms, burn q8 1338 ms +
//!   1555 ms), which is why the Whisper family does not use it on the CPU.
//!
//! What is and is not quantised, and why:
//! * linear weights (attention projections, MLPs, projectors, untied LM heads) hold
//!   most of the parameters and tolerate 8 bits well;
//! * embeddings (and so Whisper's tied output projection), convolutions, norms and
//!   biases stay f32: they are small, and the vocabulary projection decides the label
//!   logits directly.
//!
//! The scores move by the tolerances stated in `models/tests/parity/quant_fixtures.rs`.

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

/// Quantises a Whisper model for `--quant q8`: the encoder's linear layers to the
/// grouped int8 kernels on the CPU backend (decoder in f32), burn's blocks for encoder
/// and decoder elsewhere ([`quantize_linears`]). Returns how many matrices were
/// quantised.
pub fn quantize_whisper(model: &mut crate::whisper::Whisper, device: &Device) -> usize {
    if crate::nn::is_flex(device) {
        return model.quantize_q8();
    }
    let (encoder, a) = quantize_linears(model.encoder.clone(), device);
    let (decoder, b) = quantize_linears(model.decoder.clone(), device);
    model.encoder = encoder;
    model.decoder = decoder;
    a + b
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
