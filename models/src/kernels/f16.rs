//! f32 activations times f16 weights, for the few-row products of a decoder step.
//!
//! Why: a decoder step multiplies a handful of token rows by every weight matrix of the
//! decoder, so it reads all of the decoder's weights (Whisper base: 18 M in the layers
//! this serves, 72 MB in f32) to do two flops with each. Its time is memory traffic, not
//! arithmetic. Whisper checkpoints store those weights in f16 and every f16 converts to
//! f32 exactly, so holding them in f16 halves the traffic while the arithmetic sees the
//! same f32 numbers: each weight is widened in a register (`vcvtph2ps`, AVX-512 or F16C)
//! and multiplied in f32. Only the order of the additions differs from an f32 `gemm`.
//!
//! Many rows (an encoder's frames, a long prompt) are arithmetic-bound and belong in a
//! real matmul: [`F16Matrix::to_f32`] gives the weights for that, and callers pick with
//! [`FEW_ROWS`].

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::Isa;

/// The most rows this kernel is meant for: beyond this a packed f32 matmul is faster.
pub const FEW_ROWS: usize = 16;

/// Rows a kernel call keeps in registers at once (one accumulator each).
const ROW_BLOCK: usize = 8;

/// Output channels a parallel task computes (below this much work, no task is split off).
const TASK_OUTPUTS: usize = 64;

/// A weight matrix held as f16, `[n, k]` row-major: one row of `k` inputs per output
/// channel (the Hugging Face / PyTorch `Linear` layout), so that one output's inputs
/// are contiguous for a dot product.
pub struct F16Matrix {
    n: usize,
    k: usize,
    w: Vec<f16>,
}

impl std::fmt::Debug for F16Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "F16Matrix {{ n: {}, k: {} }}", self.n, self.k)
    }
}

impl F16Matrix {
    /// `w` given as `[k, n]` row-major (burn's `Linear` layout), if every value is an f16
    /// exactly (e.g. it was read from an f16 checkpoint); `None` otherwise, since
    /// rounding would change the model.
    pub fn from_in_out_exact(w: &[f32], k: usize, n: usize) -> Option<Self> {
        assert_eq!(
            w.len(),
            k * n,
            "weight of {} values for [{k}, {n}]",
            w.len()
        );
        let mut out = vec![f16::ZERO; n * k];
        for (kk, row) in w.chunks_exact(n.max(1)).enumerate() {
            for (c, &x) in row.iter().enumerate() {
                let h = f16::from_f32(x);
                // Bit equality would reject -0.0 vs 0.0 and NaN payloads; the value is what matters.
                if h.to_f32() != x && !(x.is_nan() && h.is_nan()) {
                    return None;
                }
                out[c * k + kk] = h;
            }
        }
        Some(Self { n, k, w: out })
    }

    /// Output channels.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Inputs per output.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held (2 a weight).
    pub fn bytes(&self) -> usize {
        2 * self.w.len()
    }

    /// The weights widened to f32, `[n, k]` row-major (exact), for a matmul of many rows.
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.w.len()];
        self.w.convert_to_f32_slice(&mut out);
        out
    }

    /// `out[m, n] = x[m, k] · Wᵀ + bias` with the level of [`super::isa`].
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        self.matmul_with(x, m, bias, out, super::isa());
    }

    /// [`matmul`](Self::matmul) on a given path; `isa` must be one of
    /// [`Isa::available`]. Any `m` works; it pays for `m` ≤ [`FEW_ROWS`].
    pub fn matmul_with(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
        isa: Isa,
    ) {
        let (n, k) = (self.n, self.k);
        super::check_matmul_shapes(x, out, bias, [m, k, n]);
        if m == 0 || n == 0 {
            return;
        }
        let path = Path::of(isa);
        // Computed output-major (`[n, m]`) so each task owns a contiguous block, then
        // transposed into `out` with the bias.
        let mut by_output = vec![0.0f32; n * m];
        let task = |(t, block): (usize, &mut [f32])| {
            let first = t * TASK_OUTPUTS;
            for (i, dst) in block.chunks_exact_mut(m).enumerate() {
                let o = first + i;
                path.dot_rows(x, m, &self.w[o * k..(o + 1) * k], dst);
            }
        };
        if n * k >= 1 << 16 {
            by_output
                .par_chunks_mut(TASK_OUTPUTS * m)
                .enumerate()
                .for_each(task);
        } else {
            by_output
                .chunks_mut(TASK_OUTPUTS * m)
                .enumerate()
                .for_each(task);
        }
        for (o, col) in by_output.chunks_exact(m).enumerate() {
            let b = bias.map_or(0.0, |b| b[o]);
            for (r, &v) in col.iter().enumerate() {
                out[r * n + o] = v + b;
            }
        }
    }
}

/// The dot-product routine of one instruction-set level.
#[derive(Clone, Copy)]
enum Path {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Path {
    fn of(isa: Isa) -> Self {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Path::Avx512,
            // F16C came with AVX2 on every x86 CPU that has both, but it is its own flag.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if is_x86_feature_detected!("f16c") => Path::Avx2,
            _ => Path::Scalar,
        }
    }

    /// `dst[r] = x[r] · w` for the `m` rows of `x` (`[m, k]`, `k = w.len()`).
    fn dot_rows(self, x: &[f32], m: usize, w: &[f16], dst: &mut [f32]) {
        let k = w.len();
        for (block, dst) in dst.chunks_mut(ROW_BLOCK).enumerate() {
            let rows = &x[block * ROW_BLOCK * k..][..dst.len() * k];
            match self {
                Path::Scalar => dot_rows_scalar(rows, w, dst),
                // SAFETY: `Path::of` chose these only where the CPU has the features
                // (`Isa::available` / `kernels::isa` checked AVX-512 and AVX2, and F16C).
                #[cfg(target_arch = "x86_64")]
                Path::Avx2 => unsafe { x86::dot_rows_avx2(rows, w, dst) },
                #[cfg(target_arch = "x86_64")]
                Path::Avx512 => unsafe { x86::dot_rows_avx512(rows, w, dst) },
            }
        }
        debug_assert_eq!(dst.len(), m);
    }
}

/// Plain Rust: any CPU.
fn dot_rows_scalar(x: &[f32], w: &[f16], dst: &mut [f32]) {
    let k = w.len();
    for (r, d) in dst.iter_mut().enumerate() {
        let row = &x[r * k..(r + 1) * k];
        *d = row.iter().zip(w).map(|(&a, &b)| a * b.to_f32()).sum();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::ROW_BLOCK;

    /// Up to [`ROW_BLOCK`] rows (`x` is `[dst.len(), w.len()]`) against one f16 row.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
    pub(super) unsafe fn dot_rows_avx512(x: &[f32], w: &[f16], dst: &mut [f32]) {
        match dst.len() {
            8 => unsafe { avx512::<8>(x, w, dst) },
            7 => unsafe { avx512::<7>(x, w, dst) },
            6 => unsafe { avx512::<6>(x, w, dst) },
            5 => unsafe { avx512::<5>(x, w, dst) },
            4 => unsafe { avx512::<4>(x, w, dst) },
            3 => unsafe { avx512::<3>(x, w, dst) },
            2 => unsafe { avx512::<2>(x, w, dst) },
            _ => unsafe { avx512::<1>(x, w, dst) },
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
    unsafe fn avx512<const R: usize>(x: &[f32], w: &[f16], dst: &mut [f32]) {
        const _: () = assert!(ROW_BLOCK <= 8);
        let k = w.len();
        assert!(x.len() >= R * k && dst.len() >= R);
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut acc = [_mm512_setzero_ps(); R];
        let mut kk = 0;
        while kk + 16 <= k {
            // SAFETY: kk + 16 ≤ k, so 16 halves of `w` and of each row of `x` are in bounds.
            unsafe {
                let wv = _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(kk).cast()));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(r * k + kk)), wv, *a);
                }
            }
            kk += 16;
        }
        if kk < k {
            let mask = (1u32 << (k - kk)) - 1;
            // SAFETY: masked loads touch only the k − kk < 16 lanes in bounds.
            unsafe {
                let wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask as u16, wp.add(kk).cast()));
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm512_maskz_loadu_ps(mask as u16, xp.add(r * k + kk));
                    *a = _mm512_fmadd_ps(xv, wv, *a);
                }
            }
        }
        for (d, a) in dst.iter_mut().zip(acc) {
            *d = _mm512_reduce_add_ps(a);
        }
    }

    /// Up to [`ROW_BLOCK`] rows against one f16 row, 8 lanes (AVX2 + F16C).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_rows_avx2(x: &[f32], w: &[f16], dst: &mut [f32]) {
        match dst.len() {
            8 => unsafe { avx2::<8>(x, w, dst) },
            7 => unsafe { avx2::<7>(x, w, dst) },
            6 => unsafe { avx2::<6>(x, w, dst) },
            5 => unsafe { avx2::<5>(x, w, dst) },
            4 => unsafe { avx2::<4>(x, w, dst) },
            3 => unsafe { avx2::<3>(x, w, dst) },
            2 => unsafe { avx2::<2>(x, w, dst) },
            _ => unsafe { avx2::<1>(x, w, dst) },
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn avx2<const R: usize>(x: &[f32], w: &[f16], dst: &mut [f32]) {
        let k = w.len();
        assert!(x.len() >= R * k && dst.len() >= R);
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut acc = [_mm256_setzero_ps(); R];
        let mut kk = 0;
        while kk + 8 <= k {
            // SAFETY: kk + 8 ≤ k, so 8 halves of `w` and of each row of `x` are in bounds.
            unsafe {
                let wv = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(kk).cast()));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(r * k + kk)), wv, *a);
                }
            }
            kk += 8;
        }
        for (r, (d, a)) in dst.iter_mut().zip(acc).enumerate() {
            // Horizontal sum of the 8 lanes, then the k % 8 tail in scalar.
            let hi = _mm256_extractf128_ps(a, 1);
            let s = _mm_add_ps(_mm256_castps256_ps128(a), hi);
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
            let tail: f32 = (kk..k).map(|i| x[r * k + i] * w[i].to_f32()).sum();
            *d = _mm_cvtss_f32(s) + tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values that are exact in f16 (multiples of 1/256 in ±4), spread by `seed`.
    fn halves(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2048) as f32 - 1024.0) / 256.0)
            .collect()
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.37 + seed).sin()) * 1.5)
            .collect()
    }

    /// `x[m, k] · W + b` for `W` as `[k, n]`, in f64.
    fn reference(x: &[f32], w: &[f32], bias: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] = f64::from(bias[c])
                    + (0..k)
                        .map(|i| f64::from(x[r * k + i]) * f64::from(w[i * n + c]))
                        .sum::<f64>();
            }
        }
        out
    }

    #[test]
    fn every_path_equals_the_f64_product_on_odd_shapes() {
        // (m, k, n): one row, a row per accumulator and more, k = 1, k not a multiple of
        // 8 or 16, k huge, n not a multiple of a task.
        let shapes = [
            (1, 512, 512),
            (4, 512, 2048),
            (8, 33, 70),
            (9, 17, 5),
            (16, 1, 3),
            (3, 7, 1),
            (2, 40_000, 3),
            (23, 64, 129),
        ];
        for &(m, k, n) in &shapes {
            let w = halves(k * n, m + n);
            let x = values(m * k, k as f32);
            let bias = values(n, 0.5);
            let matrix = F16Matrix::from_in_out_exact(&w, k, n).expect("values are f16");
            let want = reference(&x, &w, &bias, m, k, n);
            for isa in Isa::available() {
                let mut out = vec![f32::NAN; m * n];
                matrix.matmul_with(&x, m, Some(&bias), &mut out, isa);
                for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                    let tol = 1e-5 * (k as f64).sqrt() * (1.0 + want.abs());
                    assert!(
                        (f64::from(got) - want).abs() <= tol,
                        "{isa:?} m {m} k {k} n {n} at {i}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn weights_that_are_not_f16_are_refused_and_f16_ones_round_trip() {
        assert!(F16Matrix::from_in_out_exact(&[0.1, 0.5], 1, 2).is_none());
        let w = halves(6, 1);
        let m = F16Matrix::from_in_out_exact(&w, 2, 3).unwrap();
        assert_eq!((m.n(), m.k(), m.bytes()), (3, 2, 12));
        // to_f32 is the transpose: [n, k].
        let t = m.to_f32();
        for kk in 0..2 {
            for c in 0..3 {
                assert_eq!(t[c * 2 + kk], w[kk * 3 + c]);
            }
        }
    }

    #[test]
    fn no_rows_and_no_bias_are_fine() {
        let m = F16Matrix::from_in_out_exact(&halves(8, 2), 4, 2).unwrap();
        let mut out = [];
        m.matmul(&[], 0, None, &mut out);
        let mut out = [0.0; 2];
        m.matmul(&[1.0, 0.0, 0.0, 0.0], 1, None, &mut out);
        assert_eq!(out, [halves(8, 2)[0], halves(8, 2)[1]]);
    }
}
