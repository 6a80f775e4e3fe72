//! Kernels for burn's CPU backend (`flex`) where its own are slow.
//!
//! flex 0.22 evaluates GELU with scalar `libm::erff` on one thread (≈10 ns an element:
//! for Whisper base on 5 s of audio, ≈35 ms of a 170 ms encoder). On a flex tensor that no one else holds, `into_data` hands over
//! the buffer without a copy, so the kernels here rewrite it in place, vectorised and
//! on all cores, and give it back. Other backends (wgpu) keep burn's own ops.

use std::f32::consts::FRAC_1_SQRT_2;

use burn::backend::DispatchDevice;
use burn::prelude::*;
use burn::tensor::DType;

/// Below this many elements a second thread costs more than it saves.
const PARALLEL_MIN: usize = 1 << 15;

/// True for burn's CPU backend, where these kernels apply.
pub(crate) fn is_flex(device: &Device) -> bool {
    matches!(device.as_dispatch(), DispatchDevice::Flex(_))
}

/// `0.5 · x · (1 + erf(x / √2))` (exact, not tanh, GELU, as `torch.nn.functional.gelu`).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !is_flex(&device) || x.dtype() != DType::F32 {
        return burn::tensor::activation::gelu(x);
    }
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) => for_chunks(values, gelu_slice),
        Err(e) => unreachable!("an f32 tensor's data is f32: {e:?}"),
    }
    Tensor::from_data(data, &device)
}

/// Runs `f` over `values`, split across the available cores when it is large.
fn for_chunks(values: &mut [f32], f: fn(&mut [f32])) {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || values.len() < PARALLEL_MIN {
        return f(values);
    }
    let chunk = values.len().div_ceil(threads).next_multiple_of(64);
    std::thread::scope(|scope| {
        let mut chunks = values.chunks_mut(chunk);
        let first = chunks.next();
        for c in chunks {
            scope.spawn(move || f(c));
        }
        if let Some(c) = first {
            f(c);
        }
    });
}

/// GELU in place, with AVX2 when the CPU has it (the loop is written to vectorise).
fn gelu_slice(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { gelu_slice_avx2(values) };
    }
    gelu_slice_portable(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_slice_avx2(values: &mut [f32]) {
    gelu_slice_portable(values);
}

#[inline(always)]
fn gelu_slice_portable(values: &mut [f32]) {
    for x in values {
        *x = 0.5 * *x * (1.0 + erf(*x * FRAC_1_SQRT_2));
    }
}

/// erf for f32 as a branch-free rational function (Eigen's `generic_fast_erf_float`):
/// within a few ulp of the true value; beyond |x| = 4, erf is ±1 in f32.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_2e-3;
    q = x2 * q + -1.426_473_9e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rational erf against an f64 reference: within 2e-6 (libm's erff is within
    /// ~1e-7; the model fixtures allow 1e-3 on logits).
    #[test]
    fn gelu_matches_the_erf_definition() {
        let xs: Vec<f32> = (-12_000..=12_000).map(|i| i as f32 * 1e-3).collect();
        let mut fast = xs.clone();
        gelu_slice(&mut fast);
        let worst = xs
            .iter()
            .zip(&fast)
            .map(|(&x, &y)| {
                let exact = 0.5 * f64::from(x) * (1.0 + erf_f64(f64::from(x) * 0.5f64.sqrt()));
                (f64::from(y) - exact).abs() / exact.abs().max(1.0)
            })
            .fold(0.0, f64::max);
        assert!(worst < 2e-6, "worst relative error {worst}");
    }

    /// The flex tensor path gives what burn's own GELU gives.
    #[test]
    fn gelu_tensor_matches_burn() {
        let device = Device::flex();
        let values: Vec<f32> = (0..70_000).map(|i| (i as f32 * 0.37).sin() * 6.0).collect();
        let x = Tensor::<2>::from_data(TensorData::new(values, [7, 10_000]), &device);
        let ours = gelu(x.clone()).into_data().try_into_vec::<f32>().unwrap();
        let burns = burn::tensor::activation::gelu(x)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let worst = ours
            .iter()
            .zip(&burns)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "max |Δ| {worst}");
    }

    /// erf in f64 by its Taylor series (|x| ≤ 3) or continued fraction, for reference.
    fn erf_f64(x: f64) -> f64 {
        let a = x.abs();
        let v = if a < 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = f64::from(k) / 2.0 / (a + f);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
        };
        v.copysign(x)
    }
}
