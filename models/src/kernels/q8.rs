//! int8 matrix multiplication for `--quant q8`: `y = x · Wᵀ + b` with `W` quantised once
//! (symmetric, one scale per output channel) and `x` quantised per row (token) at run
//! time, integer products summed in i32, the scales applied in the epilogue: what
//! CTranslate2 and ONNX Runtime do on CPUs.
//!
//! Why a kernel of our own rather than a crate: `rten-gemm` (MIT/Apache, well kept) has
//! int8 kernels, but chooses among them privately (no way to run its AVX2 path on an
//! AVX-512 machine, so that path could not be tested here), its AVX2 int8 kernel uses
//! the saturating `vpmaddubsw` and asks callers to keep weights to 7 bits, and it brings
//! four crates of its own tensor stack. The kernels here are small, exact (integer sums
//! do not depend on the path: every path gives bit-identical results) and follow
//! [`super::isa`].
//!
//! Paths:
//! * AVX-512 VNNI: `vpdpbusd` multiplies unsigned by signed bytes, so activations are
//!   offset to `q + 128` and `128 · Σₖ w` (kept per column) is subtracted afterwards;
//!   6 rows × 32 columns per step (12 accumulators).
//! * AVX2: `vpmaddubsw` on `|q|` and `w · sign(q)` (each pair sum ≤ 2·127² fits in i16,
//!   so nothing saturates), then `vpmaddwd` into i32; 4 rows × 16 columns.
//! * scalar: the same sums in plain Rust.
//!
//! Weights are packed in blocks of 16 output columns, four consecutive `k` per column
//! (`[n/16][k/4][16][4]` bytes): one 64-byte load feeds 16 columns × 4 products.

use rayon::prelude::*;

use super::Isa;

/// Output columns per packed block (one 512-bit register of i32 sums).
const BLOCK_N: usize = 16;
/// Columns one parallel task computes (two blocks: the AVX-512 step's width).
const PANEL_N: usize = 2 * BLOCK_N;
/// Below this many multiply-adds a matmul runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 18;

/// A weight matrix `[n, k]` (output channels × inputs) in int8, packed for the kernels.
#[derive(Clone)]
pub struct Q8Matrix {
    n: usize,
    k: usize,
    /// `k` rounded up to a multiple of 4 (zero weights in the padding).
    k4: usize,
    /// `[n_pad / 16][k4 / 4][16][4]`, `n_pad` a multiple of [`PANEL_N`].
    packed: Vec<i8>,
    /// Dequantisation scale of each output channel (`max |w| / 127`).
    scales: Vec<f32>,
    /// `Σₖ q` of each (padded) column, for the `+128` offset of the VNNI path.
    col_sums: Vec<i32>,
}

impl std::fmt::Debug for Q8Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Q8Matrix {{ n: {}, k: {} }}", self.n, self.k)
    }
}

impl Q8Matrix {
    /// Quantises `w` given as `[k, n]` row-major (burn's `Linear` layout: input rows,
    /// output columns), one symmetric scale per output column.
    pub fn from_in_out(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(
            w.len(),
            k * n,
            "weight of {} values for [{k}, {n}]",
            w.len()
        );
        let mut scales = vec![0.0f32; n];
        for row in w.chunks_exact(n.max(1)) {
            for (s, &x) in scales.iter_mut().zip(row) {
                *s = s.max(x.abs());
            }
        }
        for s in &mut scales {
            *s = if *s > 0.0 { *s / 127.0 } else { 1.0 };
        }
        let k4 = k.div_ceil(4) * 4;
        let n_pad = n.div_ceil(PANEL_N) * PANEL_N;
        let mut packed = vec![0i8; n_pad * k4];
        let mut col_sums = vec![0i32; n_pad];
        for (kk, row) in w.chunks_exact(n.max(1)).enumerate() {
            for (c, &x) in row.iter().enumerate() {
                let q = (x / scales[c]).round().clamp(-127.0, 127.0) as i8;
                packed[pack_index(c, kk, k4)] = q;
                col_sums[c] += i32::from(q);
            }
        }
        Self {
            n,
            k,
            k4,
            packed,
            scales,
            col_sums,
        }
    }

    /// Output channels.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Inputs per output.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held (packed weights, scales, column sums).
    pub fn bytes(&self) -> usize {
        self.packed.len() + 4 * (self.scales.len() + self.col_sums.len())
    }

    /// The dequantised weight `[k, n]` (what the kernels multiply by, up to the
    /// activations' own rounding), for tests and reference paths.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut w = vec![0.0f32; self.k * self.n];
        for kk in 0..self.k {
            for c in 0..self.n {
                w[kk * self.n + c] =
                    f32::from(self.packed[pack_index(c, kk, self.k4)]) * self.scales[c];
            }
        }
        w
    }

    /// `out[m, n] = x[m, k] · W + bias` with the level of [`super::isa`].
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        self.matmul_with(x, m, bias, out, super::isa());
    }

    /// [`matmul`](Self::matmul) on a given path; `isa` must be one of
    /// [`Isa::available`].
    pub fn matmul_with(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
        isa: Isa,
    ) {
        assert_eq!(
            x.len(),
            m * self.k,
            "input of {} values for [{m}, {}]",
            x.len(),
            self.k
        );
        assert_eq!(
            out.len(),
            m * self.n,
            "output of {} values for [{m}, {}]",
            out.len(),
            self.n
        );
        if let Some(b) = bias {
            assert_eq!(
                b.len(),
                self.n,
                "bias of {} values for {} outputs",
                b.len(),
                self.n
            );
        }
        if m == 0 || self.n == 0 {
            return;
        }
        let acts = Activations::quantize(x, m, self.k, self.k4, isa == Isa::Avx512);
        let panels = self.packed.len() / (PANEL_N * self.k4);
        let out_ptr = SendPtr(out.as_mut_ptr());
        let run = |p: usize| {
            // SAFETY: each panel writes only its own columns of `out`, which outlives
            // the loop; the columns of different panels are disjoint.
            unsafe { self.panel(&acts, p, bias, out_ptr, isa) }
        };
        if m * self.n * self.k < PARALLEL_MIN {
            (0..panels).for_each(run);
        } else {
            (0..panels).into_par_iter().for_each(run);
        }
    }

    /// Columns `p·32 .. p·32+32` of every row.
    ///
    /// # Safety
    /// `out` points to `acts.m × self.n` floats that no one else writes in these columns.
    unsafe fn panel(
        &self,
        acts: &Activations,
        p: usize,
        bias: Option<&[f32]>,
        out: SendPtr,
        isa: Isa,
    ) {
        let b = &self.packed[p * PANEL_N * self.k4..(p + 1) * PANEL_N * self.k4];
        let c0 = p * PANEL_N;
        let cols = PANEL_N.min(self.n - c0);
        let mut sums = [[0i32; PANEL_N]; ROWS_MAX];
        let mut r0 = 0;
        while r0 < acts.m {
            let rows = acts.rows_per_step(isa).min(acts.m - r0);
            let a = &acts.q[r0 * self.k4..(r0 + rows) * self.k4];
            match isa {
                // SAFETY: `isa` is one the CPU supports (checked by the caller).
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { x86::panel_vnni(a, rows, self.k4, b, &mut sums) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { x86::panel_avx2(a, rows, self.k4, b, &mut sums) },
                _ => panel_scalar(a, rows, self.k4, b, &mut sums),
            }
            // The VNNI path summed (q + 128) · w: take 128 · Σ w back out (wrapping, as
            // the kernel's sums wrap; the true sums fit in i32 for k < 133 000).
            let offset = if isa == Isa::Avx512 { 128 } else { 0 };
            for (r, row_sums) in sums.iter().enumerate().take(rows) {
                let row = r0 + r;
                let a_scale = acts.scales[row];
                // SAFETY: row < m and c0 + cols ≤ n, inside the caller's buffer.
                let dst =
                    unsafe { std::slice::from_raw_parts_mut(out.0.add(row * self.n + c0), cols) };
                for (c, d) in dst.iter_mut().enumerate() {
                    let s = row_sums[c].wrapping_sub(offset * self.col_sums[c0 + c]);
                    let v = s as f32 * a_scale * self.scales[c0 + c];
                    *d = v + bias.map_or(0.0, |b| b[c0 + c]);
                }
            }
            r0 += rows;
        }
    }
}

/// Position of weight `(column c, input kk)` in the packed layout.
fn pack_index(c: usize, kk: usize, k4: usize) -> usize {
    (c / BLOCK_N) * BLOCK_N * k4 + (kk / 4) * BLOCK_N * 4 + (c % BLOCK_N) * 4 + kk % 4
}

/// Most rows any path takes in one step.
const ROWS_MAX: usize = 6;

/// Activations quantised per row: `q = round(x / s)`, `s = max |x| / 127`.
struct Activations {
    m: usize,
    /// `[m, k4]`; for the VNNI path stored as `q + 128` (bytes read as unsigned).
    q: Vec<i8>,
    scales: Vec<f32>,
}

impl Activations {
    fn quantize(x: &[f32], m: usize, k: usize, k4: usize, offset: bool) -> Self {
        let mut q = vec![0i8; m * k4];
        let mut scales = vec![1.0f32; m];
        let flip = if offset { 0x80u8 } else { 0 };
        for ((row, dst), s) in x
            .chunks_exact(k.max(1))
            .zip(q.chunks_exact_mut(k4))
            .zip(&mut scales)
        {
            let amax = row.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
            if amax > 0.0 {
                *s = amax / 127.0;
            }
            let inv = 1.0 / *s;
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = ((v * inv).round() as i8 as u8 ^ flip) as i8;
            }
            for d in &mut dst[k..] {
                *d = flip as i8;
            }
        }
        Self { m, q, scales }
    }

    fn rows_per_step(&self, isa: Isa) -> usize {
        match isa {
            Isa::Avx512 => 6,
            Isa::Avx2 => 4,
            Isa::Scalar => 4,
        }
    }
}

/// A raw output pointer the panels share (they write disjoint columns).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only for disjoint writes, see `Q8Matrix::matmul_with`.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// Integer sums of `rows` activation rows (signed `q`) with one 32-column panel.
fn panel_scalar(a: &[i8], rows: usize, k4: usize, b: &[i8], sums: &mut [[i32; PANEL_N]; ROWS_MAX]) {
    for (r, row_sums) in sums.iter_mut().enumerate().take(rows) {
        let a = &a[r * k4..(r + 1) * k4];
        for (c, s) in row_sums.iter_mut().enumerate() {
            let block = &b[(c / BLOCK_N) * BLOCK_N * k4..];
            let mut acc = 0i32;
            for (g, a4) in a.chunks_exact(4).enumerate() {
                let w4 = &block[g * BLOCK_N * 4 + (c % BLOCK_N) * 4..][..4];
                for (&x, &w) in a4.iter().zip(w4) {
                    acc = acc.wrapping_add(i32::from(x) * i32::from(w));
                }
            }
            *s = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{BLOCK_N, PANEL_N, ROWS_MAX};

    /// VNNI sums of up to 6 rows (`q + 128` bytes) with one 32-column panel.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn panel_vnni(
        a: &[i8],
        rows: usize,
        k4: usize,
        b: &[i8],
        sums: &mut [[i32; PANEL_N]; ROWS_MAX],
    ) {
        match rows {
            6 => unsafe { vnni::<6>(a, k4, b, sums) },
            5 => unsafe { vnni::<5>(a, k4, b, sums) },
            4 => unsafe { vnni::<4>(a, k4, b, sums) },
            3 => unsafe { vnni::<3>(a, k4, b, sums) },
            2 => unsafe { vnni::<2>(a, k4, b, sums) },
            _ => unsafe { vnni::<1>(a, k4, b, sums) },
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn vnni<const R: usize>(
        a: &[i8],
        k4: usize,
        b: &[i8],
        sums: &mut [[i32; PANEL_N]; ROWS_MAX],
    ) {
        debug_assert!(a.len() >= R * k4 && b.len() >= PANEL_N * k4);
        let mut acc = [[_mm512_setzero_si512(); 2]; R];
        let a_ptr = a.as_ptr();
        let b0 = b.as_ptr();
        // SAFETY: block 1 starts BLOCK_N · k4 bytes in; every read is inside `a` / `b`.
        let b1 = unsafe { b0.add(BLOCK_N * k4) };
        for g in 0..k4 / 4 {
            // SAFETY: offsets stay below BLOCK_N · k4 (b) and R · k4 (a).
            unsafe {
                let w0 = _mm512_loadu_si512(b0.add(g * 64).cast());
                let w1 = _mm512_loadu_si512(b1.add(g * 64).cast());
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x =
                        _mm512_set1_epi32(a_ptr.add(r * k4 + g * 4).cast::<i32>().read_unaligned());
                    acc[0] = _mm512_dpbusd_epi32(acc[0], x, w0);
                    acc[1] = _mm512_dpbusd_epi32(acc[1], x, w1);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: each row of `sums` holds 32 i32.
            unsafe {
                _mm512_storeu_si512(sums[r].as_mut_ptr().cast(), acc[0]);
                _mm512_storeu_si512(sums[r].as_mut_ptr().add(BLOCK_N).cast(), acc[1]);
            }
        }
    }

    /// AVX2 sums of up to 4 rows (signed `q`) with one 32-column panel, 16 columns at a
    /// time.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn panel_avx2(
        a: &[i8],
        rows: usize,
        k4: usize,
        b: &[i8],
        sums: &mut [[i32; PANEL_N]; ROWS_MAX],
    ) {
        for half in 0..2 {
            let block = &b[half * BLOCK_N * k4..(half + 1) * BLOCK_N * k4];
            match rows {
                4 => unsafe { avx2::<4>(a, k4, block, sums, half) },
                3 => unsafe { avx2::<3>(a, k4, block, sums, half) },
                2 => unsafe { avx2::<2>(a, k4, block, sums, half) },
                _ => unsafe { avx2::<1>(a, k4, block, sums, half) },
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<const R: usize>(
        a: &[i8],
        k4: usize,
        block: &[i8],
        sums: &mut [[i32; PANEL_N]; ROWS_MAX],
        half: usize,
    ) {
        debug_assert!(a.len() >= R * k4 && block.len() >= BLOCK_N * k4);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        let a_ptr = a.as_ptr();
        let w_ptr = block.as_ptr();
        for g in 0..k4 / 4 {
            // SAFETY: offsets stay inside `block` (16 · k4 bytes) and `a` (R · k4).
            unsafe {
                let w0 = _mm256_loadu_si256(w_ptr.add(g * 64).cast());
                let w1 = _mm256_loadu_si256(w_ptr.add(g * 64 + 32).cast());
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x =
                        _mm256_set1_epi32(a_ptr.add(r * k4 + g * 4).cast::<i32>().read_unaligned());
                    let ax = _mm256_sign_epi8(x, x);
                    let p0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, x));
                    let p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, x));
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(p0, ones));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(p1, ones));
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let dst = &mut sums[r][half * BLOCK_N..(half + 1) * BLOCK_N];
            // SAFETY: `dst` holds 16 i32.
            unsafe {
                _mm256_storeu_si256(dst.as_mut_ptr().cast(), acc[0]);
                _mm256_storeu_si256(dst.as_mut_ptr().add(8).cast(), acc[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in about [-amp, amp] (a sine of a multiple of the index).
    fn values(n: usize, seed: f32, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * seed + 0.3).sin() * amp)
            .collect()
    }

    /// `x · w + bias` in f64 (w `[k, n]`).
    fn reference(x: &[f32], w: &[f32], bias: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; m * n];
        for r in 0..m {
            for c in 0..n {
                let mut s = f64::from(bias[c]);
                for kk in 0..k {
                    s += f64::from(x[r * k + kk]) * f64::from(w[kk * n + c]);
                }
                out[r * n + c] = s as f32;
            }
        }
        out
    }

    /// Every path gives the same numbers (integer sums are exact), and those are the
    /// f64 product of the quantised operands; odd shapes: one row, rows not a multiple
    /// of the 4- or 6-row step, k = 1, k not a multiple of 4, columns not a multiple of
    /// the 32-column panel, and a k long enough that the offset sums wrap around i32.
    #[test]
    fn every_path_equals_the_quantised_reference_on_odd_shapes() {
        let shapes = [
            (1, 64, 32),
            (1, 1, 1),
            (7, 1, 33),
            (13, 37, 50),
            (6, 512, 512),
            (250, 96, 70),
            (2, 70_001, 17),
        ];
        for (m, k, n) in shapes {
            let w = values(k * n, 0.37, 0.2);
            let bias = values(n, 1.3, 0.5);
            let x = values(m * k, 0.711, 2.5);
            let q = Q8Matrix::from_in_out(&w, k, n);
            // The exact answer for the quantised operands: activations rounded per row
            // as the kernels do.
            let xq: Vec<f32> = x
                .chunks_exact(k)
                .flat_map(|row| {
                    let s = row.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
                    let inv = 1.0 / s;
                    row.iter().map(move |&v| (v * inv).round() * s)
                })
                .collect();
            let want = reference(&xq, &q.dequantize(), &bias, m, k, n);
            let mut first: Option<Vec<f32>> = None;
            for isa in Isa::available() {
                let mut out = vec![f32::NAN; m * n];
                q.matmul_with(&x, m, Some(&bias), &mut out, isa);
                let worst = out
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                    .fold(0.0, f32::max);
                assert!(worst < 1e-4, "{isa:?} {m}x{k}x{n}: max rel |Δ| {worst}");
                match &first {
                    None => first = Some(out),
                    Some(f) => {
                        let worst = out
                            .iter()
                            .zip(f)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0.0, f32::max);
                        assert!(worst <= 1e-4, "{isa:?} vs scalar {m}x{k}x{n}: {worst}");
                    }
                }
            }
        }
    }

    /// On general inputs the int8 product stays within the worst-case rounding bound of
    /// both operands (half a step each: `Σₖ |x|·Δw/2 + |w|·Δx/2 + Δx·Δw/4`) of the f32
    /// product, on every path; zero rows give the bias.
    #[test]
    fn int8_product_is_within_the_rounding_bound_of_f32() {
        let (m, k, n) = (9, 384, 100);
        let w = values(k * n, 0.913, 0.1);
        let x = values(m * k, 0.211, 3.0);
        let bias = values(n, 0.5, 1.0);
        let q = Q8Matrix::from_in_out(&w, k, n);
        let want = reference(&x, &w, &bias, m, k, n);
        for isa in Isa::available() {
            let mut out = vec![0.0; m * n];
            q.matmul_with(&x, m, Some(&bias), &mut out, isa);
            for r in 0..m {
                let row = &x[r * k..(r + 1) * k];
                let dx = row.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
                for c in 0..n {
                    let dw = (0..k).map(|i| w[i * n + c].abs()).fold(0.0f32, f32::max) / 127.0;
                    let bound: f32 = (0..k)
                        .map(|i| {
                            row[i].abs() * dw / 2.0 + w[i * n + c].abs() * dx / 2.0 + dx * dw / 4.0
                        })
                        .sum();
                    let d = (out[r * n + c] - want[r * n + c]).abs();
                    assert!(
                        d <= bound * 1.001 + 1e-5,
                        "{isa:?} ({r}, {c}): |Δ| {d} > bound {bound}"
                    );
                }
            }
        }
        let mut zero = vec![0.0; n];
        q.matmul(&vec![0.0; k], 1, Some(&bias), &mut zero);
        assert_eq!(zero, bias);
    }

    #[test]
    fn packed_weights_take_a_quarter_of_f32() {
        let q = Q8Matrix::from_in_out(&values(512 * 2048, 0.1, 1.0), 512, 2048);
        assert!(
            q.bytes() < 512 * 2048 * 4 / 4 + 2048 * 8 + 64,
            "{} bytes",
            q.bytes()
        );
        assert_eq!((q.k(), q.n()), (512, 2048));
    }
}
