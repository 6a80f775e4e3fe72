//! Kernels for burn's CPU backend (`flex`) where its own are slow.
//!
//! flex 0.22 evaluates GELU with scalar `libm::erff` on one thread (≈10 ns an element:
//! for Whisper base on 5 s of audio, ≈35 ms of a 170 ms encoder), and the softmax of its
//! attention with scalar `exp` and scalar max/scale/normalise loops (≈8 % of the
//! encoder's CPU time). On a flex tensor that no one else holds, `into_data` hands over
//! the buffer without a copy, so the kernels here rewrite it in place, vectorised, and
//! give it back. Other backends (wgpu) keep burn's own ops.
//!
//! Each kernel runs with the instruction set of [`crate::kernels::isa`] (AVX-512, AVX2
//! or scalar; `EMOMON_CPU_KERNELS` caps it); the per-path functions take an [`Isa`] so
//! that tests compare every path this CPU can run.
//!
//! GELU runs on the calling thread: vectorised it takes well under a millisecond a
//! layer, and threads of our own would compete for the cores with flex's rayon workers,
//! which spin for a while after each matmul. The attention softmax (≈5 % of a q8
//! encoder's time on one thread) spreads its rows over that same rayon pool.

use std::f32::consts::FRAC_1_SQRT_2;

use burn::backend::DispatchDevice;
use burn::prelude::*;
use burn::tensor::DType;

use rayon::prelude::*;

use crate::kernels::{Isa, isa};

/// Softmax rows a parallel task takes at least (a 250-key row takes ~0.1 µs).
const SOFTMAX_ROWS_PER_TASK: usize = 128;

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
        Ok(values) => gelu_slice(values, isa()),
        Err(e) => unreachable!("an f32 tensor's data is f32: {e:?}"),
    }
    Tensor::from_data(data, &device)
}

/// Largest score matrix (`batch · heads · queries · keys` elements, 64 MB) that
/// [`attention`] materialises; larger inputs go to burn's tiled (flash) attention.
const SCORES_MAX: usize = 16 << 20;

/// Bidirectional scaled dot-product attention `softmax(q kᵀ / √d) v` over
/// `[batch, heads, seq, head_dim]`, as `burn::tensor::module::attention` without mask.
///
/// On flex this is two batched matmuls (flex spreads the heads over the cores) around a
/// vectorised softmax of the whole score tensor, instead of flex's per-head loop with
/// scalar `exp`.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let device = q.device();
    let [b, h, t, d] = q.dims();
    let s = k.dims()[2];
    if !is_flex(&device) || q.dtype() != DType::F32 || b * h * t * s > SCORES_MAX {
        let options = burn::tensor::ops::AttentionModuleOptions::default();
        return burn::tensor::module::attention(q, k, v, None, None, options);
    }
    let scale = 1.0 / (d as f32).sqrt();
    let mut scores = q.matmul(k.swap_dims(2, 3)).into_data();
    let isa = isa();
    match scores.as_mut_slice::<f32>() {
        // Rows spread over the pool (an encoder layer has heads × frames of them), in
        // runs long enough that a task is worth its hand-off.
        Ok(values) => values
            .par_chunks_exact_mut(s)
            .with_min_len(SOFTMAX_ROWS_PER_TASK)
            .for_each(|row| softmax_row(row, scale, isa)),
        Err(e) => unreachable!("an f32 tensor's data is f32: {e:?}"),
    }
    Tensor::<4>::from_data(scores, &device).matmul(v)
}

/// `row ← softmax(row · scale)` (`scale > 0`) with the instruction set `isa` (which the
/// caller has checked the CPU supports, see [`Isa::available`]).
pub(crate) fn softmax_row(row: &mut [f32], scale: f32, isa: Isa) {
    match isa {
        // SAFETY (both): `isa` is at most the detected level, so the CPU has the features
        // the functions are compiled for.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { softmax_row_avx512(row, scale) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { softmax_row_avx2(row, scale) },
        _ => softmax_row_portable(row, scale),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row_avx2(row: &mut [f32], scale: f32) {
    softmax_row_portable(row, scale);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn softmax_row_avx512(row: &mut [f32], scale: f32) {
    softmax_row_portable(row, scale);
}

/// Lanes of the accumulators, so that the reductions vectorise (f32 `max`/`+` are not
/// reassociated by the compiler on its own).
const LANES: usize = 8;

#[inline(always)]
fn softmax_row_portable(row: &mut [f32], scale: f32) {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    let mut sums = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (acc, x) in sums.iter_mut().zip(c) {
            *x = exp_nonpositive((*x - max) * scale);
            *acc += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_nonpositive((*x - max) * scale);
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// `eˣ` for `x ≤ 0` (Cephes' `expf`: range reduction by ln 2, degree-6 polynomial),
/// branch-free so that it vectorises; below −87 (where eˣ leaves the normal f32
/// range) it returns e⁻⁸⁷ ≈ 1.6e-38, nothing next to the row maximum's 1.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut y = r * 1.987_569_1e-4 + 1.398_199_9e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 0.166_666_65;
    y = y * r + 0.5;
    y = y * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// GELU in place with the instruction set `isa` (the loop is written to vectorise).
pub(crate) fn gelu_slice(values: &mut [f32], isa: Isa) {
    match isa {
        // SAFETY (both): `isa` is at most the detected level.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { gelu_slice_avx512(values) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { gelu_slice_avx2(values) },
        _ => gelu_slice_portable(values),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_slice_avx2(values: &mut [f32]) {
    gelu_slice_portable(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gelu_slice_avx512(values: &mut [f32]) {
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
        for isa in Isa::available() {
            let mut fast = xs.clone();
            gelu_slice(&mut fast, isa);
            let worst = xs
                .iter()
                .zip(&fast)
                .map(|(&x, &y)| {
                    let exact = 0.5 * f64::from(x) * (1.0 + erf_f64(f64::from(x) * 0.5f64.sqrt()));
                    (f64::from(y) - exact).abs() / exact.abs().max(1.0)
                })
                .fold(0.0, f64::max);
            assert!(worst < 2e-6, "{isa:?}: worst relative error {worst}");
        }
    }

    /// Every softmax path this CPU runs gives the f64 softmax, on rows shorter than a
    /// vector, of odd lengths and long ones, with large score ranges.
    #[test]
    fn softmax_paths_match_f64() {
        for len in [1, 3, 8, 17, 250, 1501] {
            let row: Vec<f32> = (0..len).map(|i| (i as f32 * 0.71).sin() * 40.0).collect();
            let scale = 0.125f64;
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let e: Vec<f64> = row
                .iter()
                .map(|&x| ((f64::from(x) - f64::from(max)) * scale).exp())
                .collect();
            let sum: f64 = e.iter().sum();
            for isa in Isa::available() {
                let mut ours = row.clone();
                softmax_row(&mut ours, scale as f32, isa);
                let worst = ours
                    .iter()
                    .zip(&e)
                    .map(|(&p, &q)| (f64::from(p) - q / sum).abs())
                    .fold(0.0, f64::max);
                assert!(worst < 1e-6, "{isa:?}, length {len}: max |Δ| {worst}");
            }
        }
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

    #[test]
    fn exp_matches_std() {
        let worst = (0..87_000)
            .map(|i| -(i as f32) * 1e-3)
            .map(|x| ((exp_nonpositive(x) - x.exp()) / x.exp()).abs())
            .fold(0.0, f32::max);
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert!(exp_nonpositive(-1e4) < 2e-38);
    }

    /// The flex path gives what burn's fused attention gives.
    #[test]
    fn attention_matches_burn() {
        let device = Device::flex();
        let x = |seed: f32, shape: [usize; 4]| {
            let n = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|i| (i as f32 * seed).sin() * 2.0).collect();
            Tensor::<4>::from_data(TensorData::new(v, shape), &device)
        };
        let (q, k, v) = (
            x(0.37, [2, 3, 37, 16]),
            x(0.11, [2, 3, 41, 16]),
            x(0.23, [2, 3, 41, 16]),
        );
        let ours = attention(q.clone(), k.clone(), v.clone()).into_data();
        let options = burn::tensor::ops::AttentionModuleOptions::default();
        let burns = burn::tensor::module::attention(q, k, v, None, None, options).into_data();
        let worst = ours
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .zip(burns.as_slice::<f32>().unwrap())
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
