//! Grouped int8 matrix multiplication for `--quant q8`: `y = x · W + b` with `W`
//! quantised once at load and `x` at run time, both symmetric, one scale per
//! [`GROUP`] (32) consecutive inputs on both sides: per (group, output column) for the
//! weights, per (row, group) for the activations, as llama.cpp's Q8_0. Each group's
//! integer products are summed exactly in i32, converted to f32 and scaled by
//! `s_x[row, g] · s_w[g, col]` into f32 accumulators.
//!
//! Why groups and not CTranslate2's per-channel weights × per-token activations: on
//! Whisper base that coarser scheme moves the emotion-label logits by up to 0.40 with
//! only the encoder in int8, over issue 15's 0.25 guard whichever kernel runs it; groups
//! of 32 on both sides keep them within 0.22 (`scripts/q8_error_sim.py`,
//! docs/performance.md). The price is one f32 multiply-add per 8 integer steps.
//!
//! Why a kernel of our own rather than a crate: `rten-gemm` (MIT/Apache, well kept) has
//! int8 kernels, but only per-channel scales (no groups), chooses among its paths
//! privately (its AVX2 path could not be tested on this AVX-512 machine), its AVX2 int8
//! kernel uses the saturating `vpmaddubsw` and asks callers to keep weights to 7 bits,
//! and it brings four crates of its own tensor stack. The kernels here are small, follow
//! [`super::isa`], and every path gives bit-identical results: the integer sums are
//! exact and every path applies the scales with the same f32 operations (a fused
//! multiply-add, `f32::mul_add` on the scalar path).
//!
//! Paths:
//! * AVX-512 VNNI: `vpdpbusd` multiplies unsigned by signed bytes, so the weights are
//!   read as `w + 128` (one XOR per load) and `128 · Σ_group q_x`, kept per (row, group)
//!   with the activations, is subtracted in the epilogue; 6 rows × 32 columns per step.
//! * AVX2: `vpmaddubsw` on `|q_x|` and `w · sign(q_x)` (each pair sum ≤ 2·127² fits in
//!   i16, so nothing saturates), then `vpmaddwd` into i32; 4 rows × 16 columns.
//! * scalar: the same sums in plain Rust.
//!
//! `k` not a multiple of 32: the last group is padded with zeros on both sides (its
//! scales come from its real values), so padding adds nothing to any sum.
//!
//! Weights are packed in blocks of 16 output columns, four consecutive `k` per column
//! (`[n/16][k32/4][16][4]` bytes): one 64-byte load feeds 16 columns × 4 products;
//! their scales per 32-column panel (`[n/32][groups][32]`): two 64-byte loads a group.

use rayon::prelude::*;

use super::{Isa, SendPtr};

/// Inputs per quantisation group (one scale per group on both sides).
pub const GROUP: usize = 32;
/// Output columns per packed block (one 512-bit register of i32 sums).
const BLOCK_N: usize = 16;
/// Columns one task computes (two blocks: the AVX-512 step's width).
const PANEL_N: usize = 2 * BLOCK_N;
/// Rows one task computes (a multiple of both paths' row steps, 6 and 4): the task's
/// activations (96 × k bytes) and weight panel (32 × k bytes) stay in L2.
const PANEL_M: usize = 96;
/// Below this many multiply-adds a matmul or a quantisation runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 18;
/// Most rows any path takes in one step.
const ROWS_MAX: usize = 6;

/// A weight matrix `[k, n]` (inputs × output channels) in int8, packed for the kernels.
#[derive(Clone)]
pub struct Q8Matrix {
    n: usize,
    k: usize,
    /// Groups of [`GROUP`] inputs (`k / 32` rounded up).
    groups: usize,
    /// `[n_pad / 16][groups · 32 / 4][16][4]`, `n_pad` a multiple of [`PANEL_N`].
    packed: Vec<i8>,
    /// Scale of each (group, column): `max |w| / 127` over the group's inputs, as
    /// `[n_pad / 32][groups][32]`.
    scales: Vec<f32>,
}

impl std::fmt::Debug for Q8Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Q8Matrix {{ n: {}, k: {} }}", self.n, self.k)
    }
}

impl Q8Matrix {
    /// Quantises `w` given as `[k, n]` row-major (burn's `Linear` layout: input rows,
    /// output columns), one symmetric scale per (group of 32 inputs, output column).
    pub fn from_in_out(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(
            w.len(),
            k * n,
            "weight of {} values for [{k}, {n}]",
            w.len()
        );
        let groups = k.div_ceil(GROUP);
        let k32 = groups * GROUP;
        let n_pad = n.div_ceil(PANEL_N) * PANEL_N;
        let mut amax = vec![0.0f32; groups * n];
        for (kk, row) in w.chunks_exact(n.max(1)).enumerate() {
            let g = &mut amax[(kk / GROUP) * n..][..n];
            for (a, &x) in g.iter_mut().zip(row) {
                *a = a.max(x.abs());
            }
        }
        let mut scales = vec![0.0f32; n_pad * groups];
        for g in 0..groups {
            for c in 0..n {
                scales[scale_index(c, g, groups)] = amax[g * n + c] / 127.0;
            }
        }
        let mut packed = vec![0i8; n_pad * k32];
        for (kk, row) in w.chunks_exact(n.max(1)).enumerate() {
            let g = kk / GROUP;
            for (c, &x) in row.iter().enumerate() {
                let s = scales[scale_index(c, g, groups)];
                let q = if s > 0.0 { (x / s).round() } else { 0.0 };
                packed[pack_index(c, kk, k32)] = q.clamp(-127.0, 127.0) as i8;
            }
        }
        Self {
            n,
            k,
            groups,
            packed,
            scales,
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

    /// Bytes held: the packed int8 weights and their f32 group scales (1.125 bytes a
    /// weight, against 4 in f32, plus padding to whole panels and groups).
    pub fn bytes(&self) -> usize {
        self.packed.len() + 4 * self.scales.len()
    }

    /// The dequantised weight `[k, n]` (what the kernels multiply by, up to the
    /// activations' own rounding), for tests and reference paths.
    pub fn dequantize(&self) -> Vec<f32> {
        let k32 = self.groups * GROUP;
        let mut w = vec![0.0f32; self.k * self.n];
        for kk in 0..self.k {
            for c in 0..self.n {
                w[kk * self.n + c] = f32::from(self.packed[pack_index(c, kk, k32)])
                    * self.scales[scale_index(c, kk / GROUP, self.groups)];
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
        // `quantize` checks the input's shape, `matmul_quantized` the output's.
        let acts = Activations::quantize(x, m, self.k, isa);
        self.matmul_quantized(&acts, bias, out, Epilogue::Store, isa);
    }

    /// `out[m, n] ← epilogue(acts · W + bias)` for activations already quantised (one
    /// quantisation can feed several matrices that read the same input, as the query,
    /// key and value projections do); `isa` must be one of [`Isa::available`].
    pub fn matmul_quantized(
        &self,
        acts: &Activations,
        bias: Option<&[f32]>,
        out: &mut [f32],
        epilogue: Epilogue,
        isa: Isa,
    ) {
        let m = acts.m;
        assert_eq!(
            acts.k, self.k,
            "activations of {} inputs for a {}-input matrix",
            acts.k, self.k
        );
        super::check_output_shapes(out, bias, [m, self.n]);
        if m == 0 || self.n == 0 {
            return;
        }
        let panels = self.packed.len() / (PANEL_N * self.groups * GROUP).max(1);
        let row_blocks = m.div_ceil(PANEL_M);
        let dst = Destination {
            out: SendPtr(out.as_mut_ptr()),
            bias,
            epilogue,
        };
        // Neighbouring tasks share a weight panel.
        let run = |task: usize| {
            let (p, rb) = (task / row_blocks, task % row_blocks);
            let rows = rb * PANEL_M..m.min((rb + 1) * PANEL_M);
            // SAFETY: each task writes only its own rows × columns of `out`, which
            // outlives the loop; the rectangles of different tasks are disjoint.
            unsafe { self.tile(acts, rows, p, dst, isa) }
        };
        if self.groups == 0 {
            // k = 0: the product is empty, the output is the bias.
            let zeros = vec![0.0f32; self.n];
            for row in out.chunks_exact_mut(self.n) {
                finish_row(row, &zeros, bias.unwrap_or(&zeros), epilogue);
            }
        } else if m * self.n * self.k < PARALLEL_MIN {
            (0..panels * row_blocks).for_each(run);
        } else {
            (0..panels * row_blocks).into_par_iter().for_each(run);
        }
    }

    /// Columns `p·32 .. p·32+32` of rows `rows`.
    ///
    /// # Safety
    /// `dst.out` points to `acts.m × self.n` floats that no one else writes in this
    /// rectangle.
    unsafe fn tile(
        &self,
        acts: &Activations,
        rows: std::ops::Range<usize>,
        p: usize,
        dst: Destination,
        isa: Isa,
    ) {
        let Destination {
            out,
            bias,
            epilogue,
        } = dst;
        let k32 = self.groups * GROUP;
        let w = Panel {
            packed: &self.packed[p * PANEL_N * k32..(p + 1) * PANEL_N * k32],
            scales: &self.scales[p * PANEL_N * self.groups..(p + 1) * PANEL_N * self.groups],
            groups: self.groups,
        };
        let c0 = p * PANEL_N;
        let cols = PANEL_N.min(self.n - c0);
        let step = match isa {
            Isa::Avx512 => 6,
            Isa::Avx2 | Isa::Scalar => 4,
        };
        let zeros = [0.0f32; PANEL_N];
        let bias = bias.map_or(&zeros[..], |b| &b[c0..c0 + cols]);
        let mut sums = [[0.0f32; PANEL_N]; ROWS_MAX];
        let mut r0 = rows.start;
        while r0 < rows.end {
            let n_rows = step.min(rows.end - r0);
            let a = acts.rows(r0, n_rows);
            // The outputs these rows will be written to (or added to): fetched while the
            // integer products run, since rows of a wide output are far apart in memory
            // and each would otherwise miss the cache when its sums are stored.
            for row in r0..r0 + n_rows {
                // SAFETY: row < m and c0 < n: inside the caller's buffer.
                prefetch(unsafe { out.at(row * self.n + c0) }, cols);
            }
            match isa {
                // SAFETY: `isa` is one the CPU supports (checked by the caller).
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { x86::panel_vnni(&a, &w, &mut sums) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { x86::panel_avx2(&a, &w, &mut sums) },
                _ => panel_scalar(&a, &w, &mut sums),
            }
            for (r, row_sums) in sums.iter().enumerate().take(n_rows) {
                let row = r0 + r;
                // SAFETY: row < m and c0 + cols ≤ n, inside the caller's buffer.
                let dst =
                    unsafe { std::slice::from_raw_parts_mut(out.at(row * self.n + c0), cols) };
                finish_row(dst, &row_sums[..cols], &bias[..cols], epilogue);
            }
            r0 += n_rows;
        }
    }
}

/// Asks the CPU to bring the `len` floats at `at` into L1 (a hint: no effect on results).
#[inline(always)]
fn prefetch(at: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for line in (0..len).step_by(16) {
        // SAFETY: prefetching never faults, whatever the address; the callers pass
        // addresses inside their buffer anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                at.wrapping_add(line).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, len);
}

/// Position of weight `(column c, input kk)` in the packed layout.
fn pack_index(c: usize, kk: usize, k32: usize) -> usize {
    (c / BLOCK_N) * BLOCK_N * k32 + (kk / 4) * BLOCK_N * 4 + (c % BLOCK_N) * 4 + kk % 4
}

/// Position of the scale of `(column c, group g)`.
fn scale_index(c: usize, g: usize, groups: usize) -> usize {
    (c / PANEL_N) * PANEL_N * groups + g * PANEL_N + c % PANEL_N
}

/// One 32-column panel of the weights: packed bytes and group scales.
struct Panel<'a> {
    /// `[2][groups · 32 / 4][16][4]`.
    packed: &'a [i8],
    /// `[groups][32]`.
    scales: &'a [f32],
    groups: usize,
}

/// A few consecutive activation rows, as the kernels read them.
struct Rows<'a> {
    n: usize,
    /// `[n][groups · 32]`, signed.
    q: &'a [i8],
    /// `[n][groups]`.
    scales: &'a [f32],
    /// `[n][groups]`: `Σ q` over each group (the VNNI path's offset correction).
    sums: &'a [i32],
}

/// One row's input values, bytes, scales and sums, as the row iterators zip them.
type RowParts<'a> = (((&'a [f32], &'a mut [i8]), &'a mut [f32]), &'a mut [i32]);

/// Activations quantised per (row, group): `q = round(x / s)`, `s = max |x| / 127`.
/// The default holds no rows (buffers to [`requantize`](Self::requantize) into).
#[derive(Default)]
pub struct Activations {
    m: usize,
    /// Inputs per row (before padding to whole groups).
    k: usize,
    groups: usize,
    /// `[m][groups · 32]`, zero in the padding.
    q: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
}

impl Activations {
    /// `x` (`[m, k]`) quantised with `isa` (one of [`Isa::available`]).
    pub fn quantize(x: &[f32], m: usize, k: usize, isa: Isa) -> Self {
        let mut acts = Self::default();
        acts.requantize(x, m, k, isa);
        acts
    }

    /// Quantises `x` (`[m, k]`) into these buffers, reusing their memory (a model's
    /// layers quantise inputs of the same few shapes over and over).
    pub fn requantize(&mut self, x: &[f32], m: usize, k: usize, isa: Isa) {
        assert_eq!(x.len(), m * k, "input of {} values for [{m}, {k}]", x.len());
        let groups = k.div_ceil(GROUP);
        let k32 = groups * GROUP;
        self.m = m;
        self.k = k;
        self.groups = groups;
        // Every byte is rewritten below (a last part-group is padded with zeros), so
        // the buffers are only resized.
        self.q.resize(m * k32, 0);
        self.scales.resize(m * groups, 0.0);
        self.sums.resize(m * groups, 0);
        if groups == 0 {
            return;
        }
        let (q, scales, sums) = (&mut self.q, &mut self.scales, &mut self.sums);
        let run = |(((x, q), s), sum): RowParts| {
            quantize_row(x, q, s, sum, isa);
        };
        if m * k < PARALLEL_MIN {
            x.chunks_exact(k)
                .zip(q.chunks_exact_mut(k32))
                .zip(scales.chunks_exact_mut(groups))
                .zip(sums.chunks_exact_mut(groups))
                .for_each(run);
        } else {
            x.par_chunks_exact(k)
                .zip(q.par_chunks_exact_mut(k32))
                .zip(scales.par_chunks_exact_mut(groups))
                .zip(sums.par_chunks_exact_mut(groups))
                .with_min_len(8)
                .for_each(run);
        }
    }

    fn rows(&self, r0: usize, n: usize) -> Rows<'_> {
        let k32 = self.groups * GROUP;
        Rows {
            n,
            q: &self.q[r0 * k32..(r0 + n) * k32],
            scales: &self.scales[r0 * self.groups..(r0 + n) * self.groups],
            sums: &self.sums[r0 * self.groups..(r0 + n) * self.groups],
        }
    }
}

/// Quantises one row (`x` of `k` values into `q` of whole groups) with `isa`.
/// The vector paths quantise the whole groups; a last part-group goes through the
/// portable code, which pads it.
fn quantize_row(x: &[f32], q: &mut [i8], scales: &mut [f32], sums: &mut [i32], isa: Isa) {
    let full = x.len() / GROUP;
    assert!(q.len() >= full * GROUP && scales.len() >= full && sums.len() >= full);
    let whole = &x[..full * GROUP];
    let done = match isa {
        // SAFETY (both): `isa` is at most the detected level; `whole` is whole groups
        // and `q`, `scales`, `sums` hold them (asserted above).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            unsafe { x86::quantize_groups_avx512(whole, q, scales, sums) };
            full
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            unsafe { x86::quantize_groups_avx2(whole, q, scales, sums) };
            full
        }
        _ => 0,
    };
    if done * GROUP < x.len() {
        quantize_row_portable(
            &x[done * GROUP..],
            &mut q[done * GROUP..],
            &mut scales[done..],
            &mut sums[done..],
        );
    }
}

/// The row quantiser, written to vectorise; every path gives the same bytes and
/// scales (maximum, one multiply and round-half-even are exact IEEE operations).
#[inline(always)]
fn quantize_row_portable(x: &[f32], q: &mut [i8], scales: &mut [f32], sums: &mut [i32]) {
    let (full, tail) = x.split_at(x.len() / GROUP * GROUP);
    let mut groups = q
        .chunks_exact_mut(GROUP)
        .zip(scales.iter_mut())
        .zip(sums.iter_mut());
    for (src, ((q, s), sum)) in full.chunks_exact(GROUP).zip(&mut groups) {
        let src: &[f32; GROUP] = src.try_into().expect("a whole group");
        let q: &mut [i8; GROUP] = q.try_into().expect("a whole group");
        (*s, *sum) = quantize_group(src, q);
    }
    if let Some(((q, s), sum)) = groups.next() {
        // The last, partial group: zeros after its values.
        let mut src = [0.0f32; GROUP];
        src[..tail.len()].copy_from_slice(tail);
        let q: &mut [i8; GROUP] = q.try_into().expect("a whole group");
        (*s, *sum) = quantize_group(&src, q);
    }
}

/// One group: `q = round(x · 127 / max |x|)` (0 for an all-zero group); returns the
/// scale `max |x| / 127` and `Σ q`.
#[inline(always)]
fn quantize_group(x: &[f32; GROUP], q: &mut [i8; GROUP]) -> (f32, i32) {
    let mut lanes = [0.0f32; 8];
    for chunk in x.chunks_exact(8) {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    let amax = lanes.iter().fold(0.0f32, |m, &a| if a > m { a } else { m });
    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (d, &v) in q.iter_mut().zip(x) {
        let r = (v * inv).round_ties_even() as i32;
        *d = r as i8;
        sum += r;
    }
    (amax / 127.0, sum)
}

/// Where a matmul's tasks write: the output buffer, the bias and what to do with each
/// finished value.
#[derive(Clone, Copy)]
struct Destination<'a> {
    out: SendPtr,
    bias: Option<&'a [f32]>,
    epilogue: Epilogue,
}

/// What a matmul does with each finished output `s + b` (the product plus the bias).
#[derive(Clone, Copy)]
pub enum Epilogue {
    /// `out = s + b`.
    Store,
    /// `out += s + b`: a residual connection added in place.
    Accumulate,
}

/// Writes one run of finished outputs: `dst ← epilogue(sums + bias)`.
#[inline]
fn finish_row(dst: &mut [f32], sums: &[f32], bias: &[f32], epilogue: Epilogue) {
    match epilogue {
        Epilogue::Accumulate => {
            for ((d, &s), &b) in dst.iter_mut().zip(sums).zip(bias) {
                *d += s + b;
            }
        }
        Epilogue::Store => {
            for ((d, &s), &b) in dst.iter_mut().zip(sums).zip(bias) {
                *d = s + b;
            }
        }
    }
}

/// f32 results of `a.n` activation rows with one 32-column panel, in plain Rust.
fn panel_scalar(a: &Rows, w: &Panel, out: &mut [[f32; PANEL_N]; ROWS_MAX]) {
    let k32 = w.groups * GROUP;
    for (r, out) in out.iter_mut().enumerate().take(a.n) {
        let q = &a.q[r * k32..(r + 1) * k32];
        out.fill(0.0);
        for g in 0..w.groups {
            let sx = a.scales[r * w.groups + g];
            for (c, acc) in out.iter_mut().enumerate() {
                let block = &w.packed[(c / BLOCK_N) * BLOCK_N * k32..];
                let mut sum = 0i32;
                for step in g * GROUP / 4..(g + 1) * GROUP / 4 {
                    let w4 = &block[step * BLOCK_N * 4 + (c % BLOCK_N) * 4..][..4];
                    for (&x, &w) in q[step * 4..step * 4 + 4].iter().zip(w4) {
                        sum += i32::from(x) * i32::from(w);
                    }
                }
                *acc = (sum as f32 * sx).mul_add(w.scales[g * PANEL_N + c], *acc);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{BLOCK_N, GROUP, PANEL_N, Panel, ROWS_MAX, Rows};

    /// [`super::quantize_row_portable`] with AVX-512 over whole groups (`x.len()` a
    /// multiple of 32), one group (two registers) at a time; the same operations, so
    /// the same bytes. (Left to itself the compiler vectorises the portable loop across
    /// groups, with gathers, at ~2 ns a value.)
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn quantize_groups_avx512(
        x: &[f32],
        q: &mut [i8],
        scales: &mut [f32],
        sums: &mut [i32],
    ) {
        let full = x.len() / GROUP;
        assert!(q.len() >= full * GROUP && scales.len() >= full && sums.len() >= full);
        let abs_mask = _mm512_set1_epi32(i32::MAX);
        for g in 0..full {
            // SAFETY: group g's 32 values and bytes are inside `x` and `q`, checked above.
            unsafe {
                let src = x.as_ptr().add(g * GROUP);
                let v = [_mm512_loadu_ps(src), _mm512_loadu_ps(src.add(16))];
                let a = v.map(|v| {
                    _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask))
                });
                let amax = _mm512_reduce_max_ps(_mm512_max_ps(a[0], a[1]));
                let inv = _mm512_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
                let r = v.map(|v| {
                    _mm512_cvtps_epi32(_mm512_roundscale_ps::<
                        { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                    >(_mm512_mul_ps(v, inv)))
                });
                let dst = q.as_mut_ptr().add(g * GROUP);
                _mm_storeu_si128(dst.cast(), _mm512_cvtepi32_epi8(r[0]));
                _mm_storeu_si128(dst.add(16).cast(), _mm512_cvtepi32_epi8(r[1]));
                scales[g] = amax / 127.0;
                sums[g] = _mm512_reduce_add_epi32(_mm512_add_epi32(r[0], r[1]));
            }
        }
    }

    /// [`super::quantize_row_portable`] with AVX2 over whole groups, as
    /// [`quantize_groups_avx512`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize_groups_avx2(
        x: &[f32],
        q: &mut [i8],
        scales: &mut [f32],
        sums: &mut [i32],
    ) {
        let full = x.len() / GROUP;
        assert!(q.len() >= full * GROUP && scales.len() >= full && sums.len() >= full);
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
        // vpackssdw / vpacksswb interleave 128-bit lanes; this puts the bytes back in order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for g in 0..full {
            // SAFETY: group g's 32 values and bytes are inside `x` and `q`, checked above.
            unsafe {
                let src = x.as_ptr().add(g * GROUP);
                let v = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(src.add(o)));
                let a = v.map(|v| _mm256_and_ps(v, abs_mask));
                let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
                let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
                let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
                let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)));
                let inv = _mm256_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
                let r = v.map(|v| {
                    _mm256_cvtps_epi32(_mm256_round_ps::<
                        { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                    >(_mm256_mul_ps(v, inv)))
                });
                let bytes = _mm256_packs_epi16(
                    _mm256_packs_epi32(r[0], r[1]),
                    _mm256_packs_epi32(r[2], r[3]),
                );
                _mm256_storeu_si256(
                    q.as_mut_ptr().add(g * GROUP).cast(),
                    _mm256_permutevar8x32_epi32(bytes, order),
                );
                let s =
                    _mm256_add_epi32(_mm256_add_epi32(r[0], r[1]), _mm256_add_epi32(r[2], r[3]));
                let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
                let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
                let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
                scales[g] = amax / 127.0;
                sums[g] = _mm_cvtsi128_si32(s);
            }
        }
    }

    /// VNNI results of up to 6 rows with one 32-column panel.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma")]
    pub(super) unsafe fn panel_vnni(a: &Rows, w: &Panel, out: &mut [[f32; PANEL_N]; ROWS_MAX]) {
        match a.n {
            6 => unsafe { vnni::<6>(a, w, out) },
            5 => unsafe { vnni::<5>(a, w, out) },
            4 => unsafe { vnni::<4>(a, w, out) },
            3 => unsafe { vnni::<3>(a, w, out) },
            2 => unsafe { vnni::<2>(a, w, out) },
            _ => unsafe { vnni::<1>(a, w, out) },
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma")]
    unsafe fn vnni<const R: usize>(a: &Rows, w: &Panel, out: &mut [[f32; PANEL_N]; ROWS_MAX]) {
        let groups = w.groups;
        let k32 = groups * GROUP;
        assert!(a.q.len() >= R * k32 && a.scales.len() >= R * groups);
        assert!(w.packed.len() >= PANEL_N * k32 && w.scales.len() >= PANEL_N * groups);
        let flip = _mm512_set1_epi8(i8::MIN);
        let mut facc = [[_mm512_setzero_ps(); 2]; R];
        let a_ptr = a.q.as_ptr();
        let b0 = w.packed.as_ptr();
        // SAFETY: block 1 starts BLOCK_N · k32 bytes in, inside the panel.
        let b1 = unsafe { b0.add(BLOCK_N * k32) };
        for g in 0..groups {
            let mut acc = [[_mm512_setzero_si512(); 2]; R];
            for step in g * GROUP / 4..(g + 1) * GROUP / 4 {
                // SAFETY: offsets stay below BLOCK_N · k32 (each block) and R · k32 (a),
                // checked above.
                unsafe {
                    let w0 = _mm512_xor_si512(_mm512_loadu_si512(b0.add(step * 64).cast()), flip);
                    let w1 = _mm512_xor_si512(_mm512_loadu_si512(b1.add(step * 64).cast()), flip);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = _mm512_set1_epi32(
                            a_ptr.add(r * k32 + step * 4).cast::<i32>().read_unaligned(),
                        );
                        acc[0] = _mm512_dpbusd_epi32(acc[0], w0, x);
                        acc[1] = _mm512_dpbusd_epi32(acc[1], w1, x);
                    }
                }
            }
            // SAFETY: the group's 32 scales are inside the panel's, checked above.
            let sw = unsafe {
                let p = w.scales.as_ptr().add(g * PANEL_N);
                [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(BLOCK_N))]
            };
            for (r, (acc, facc)) in acc.iter().zip(&mut facc).enumerate() {
                // Σ (w + 128) · q = Σ w · q + 128 · Σ q.
                let offset = _mm512_set1_epi32(128 * a.sums[r * groups + g]);
                let sx = _mm512_set1_ps(a.scales[r * groups + g]);
                for ((f, &a), &s) in facc.iter_mut().zip(acc).zip(&sw) {
                    let t = _mm512_cvtepi32_ps(_mm512_sub_epi32(a, offset));
                    *f = _mm512_fmadd_ps(_mm512_mul_ps(t, sx), s, *f);
                }
            }
        }
        for (facc, out) in facc.iter().zip(out.iter_mut()) {
            // SAFETY: each row of `out` holds 32 f32.
            unsafe {
                _mm512_storeu_ps(out.as_mut_ptr(), facc[0]);
                _mm512_storeu_ps(out.as_mut_ptr().add(BLOCK_N), facc[1]);
            }
        }
    }

    /// AVX2 results of up to 4 rows with one 32-column panel, 16 columns at a time.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn panel_avx2(a: &Rows, w: &Panel, out: &mut [[f32; PANEL_N]; ROWS_MAX]) {
        for half in 0..2 {
            match a.n {
                4 => unsafe { avx2::<4>(a, w, out, half) },
                3 => unsafe { avx2::<3>(a, w, out, half) },
                2 => unsafe { avx2::<2>(a, w, out, half) },
                _ => unsafe { avx2::<1>(a, w, out, half) },
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<const R: usize>(
        a: &Rows,
        w: &Panel,
        out: &mut [[f32; PANEL_N]; ROWS_MAX],
        half: usize,
    ) {
        let groups = w.groups;
        let k32 = groups * GROUP;
        assert!(a.q.len() >= R * k32 && a.scales.len() >= R * groups);
        assert!(w.packed.len() >= PANEL_N * k32 && w.scales.len() >= PANEL_N * groups);
        let ones = _mm256_set1_epi16(1);
        let mut facc = [[_mm256_setzero_ps(); 2]; R];
        let a_ptr = a.q.as_ptr();
        // SAFETY: block `half` starts half · BLOCK_N · k32 bytes in, inside the panel.
        let w_ptr = unsafe { w.packed.as_ptr().add(half * BLOCK_N * k32) };
        for g in 0..groups {
            let mut acc = [[_mm256_setzero_si256(); 2]; R];
            for step in g * GROUP / 4..(g + 1) * GROUP / 4 {
                // SAFETY: offsets stay inside the block (16 · k32 bytes) and `a`
                // (R · k32), checked above.
                unsafe {
                    let w0 = _mm256_loadu_si256(w_ptr.add(step * 64).cast());
                    let w1 = _mm256_loadu_si256(w_ptr.add(step * 64 + 32).cast());
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = _mm256_set1_epi32(
                            a_ptr.add(r * k32 + step * 4).cast::<i32>().read_unaligned(),
                        );
                        let ax = _mm256_sign_epi8(x, x);
                        let p0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, x));
                        let p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, x));
                        acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(p0, ones));
                        acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(p1, ones));
                    }
                }
            }
            // SAFETY: the group's 16 scales of this half are inside the panel's.
            let sw = unsafe {
                let p = w.scales.as_ptr().add(g * PANEL_N + half * BLOCK_N);
                [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))]
            };
            for (r, (acc, facc)) in acc.iter().zip(&mut facc).enumerate() {
                let sx = _mm256_set1_ps(a.scales[r * groups + g]);
                for ((f, &a), &s) in facc.iter_mut().zip(acc).zip(&sw) {
                    let t = _mm256_cvtepi32_ps(a);
                    *f = _mm256_fmadd_ps(_mm256_mul_ps(t, sx), s, *f);
                }
            }
        }
        for (facc, out) in facc.iter().zip(out.iter_mut()) {
            let dst = &mut out[half * BLOCK_N..(half + 1) * BLOCK_N];
            // SAFETY: `dst` holds 16 f32.
            unsafe {
                _mm256_storeu_ps(dst.as_mut_ptr(), facc[0]);
                _mm256_storeu_ps(dst.as_mut_ptr().add(8), facc[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in about [-amp, amp] (a sine of a multiple of the index),
    /// with a few large outliers, as transformer activations have.
    fn values(n: usize, seed: f32, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let v = (i as f32 * seed + 0.3).sin() * amp;
                if i % 97 == 5 { v * 20.0 } else { v }
            })
            .collect()
    }

    /// `x · w + bias` in f64 (w `[k, n]`).
    fn reference(x: &[f32], w: &[f32], bias: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for r in 0..m {
            for c in 0..n {
                let mut s = f64::from(bias[c]);
                for kk in 0..k {
                    s += f64::from(x[r * k + kk]) * f64::from(w[kk * n + c]);
                }
                out[r * n + c] = s;
            }
        }
        out
    }

    /// The activations as the kernels see them, dequantised (`q · s` per group).
    fn dequantized_activations(x: &[f32], m: usize, k: usize) -> Vec<f32> {
        let a = Activations::quantize(x, m, k, Isa::Scalar);
        let k32 = a.groups * GROUP;
        (0..m * k)
            .map(|i| {
                let (r, kk) = (i / k, i % k);
                f32::from(a.q[r * k32 + kk]) * a.scales[r * a.groups + kk / GROUP]
            })
            .collect()
    }

    /// Every path gives bit-identical numbers (exact integer sums, the same f32
    /// epilogue), and those are the f64 product of the quantised operands up to f32
    /// accumulation. Odd shapes: one row; rows not a multiple of the 4- or 6-row step or
    /// of the 96-row task; k = 1, k = 32, k not a multiple of 4 or 32 (the last group
    /// padded); columns not a multiple of the 32-column panel; a huge k.
    #[test]
    fn every_path_equals_scalar_and_the_quantised_reference_on_odd_shapes() {
        let shapes = [
            (1, 64, 32),
            (1, 1, 1),
            (7, 1, 33),
            (5, 32, 16),
            (13, 37, 50),
            (6, 512, 512),
            (97, 33, 70),
            (250, 96, 70),
            (2, 100_003, 17),
        ];
        for (m, k, n) in shapes {
            let w = values(k * n, 0.37, 0.2);
            let bias = values(n, 1.3, 0.5);
            let x = values(m * k, 0.711, 2.5);
            let q = Q8Matrix::from_in_out(&w, k, n);
            let xq = dequantized_activations(&x, m, k);
            let want = reference(&xq, &q.dequantize(), &bias, m, k, n);
            // f32 accumulation of `groups` partial sums: bound the error by the sum of
            // the magnitudes.
            let mags = reference(
                &xq.iter().map(|v| v.abs()).collect::<Vec<_>>(),
                &q.dequantize().iter().map(|v| v.abs()).collect::<Vec<_>>(),
                &bias.iter().map(|v| v.abs()).collect::<Vec<_>>(),
                m,
                k,
                n,
            );
            let mut scalar = vec![f32::NAN; m * n];
            q.matmul_with(&x, m, Some(&bias), &mut scalar, Isa::Scalar);
            for ((&got, &want), &mag) in scalar.iter().zip(&want).zip(&mags) {
                let tol = mag * 4e-7 * (k.div_ceil(GROUP) as f64 + 2.0);
                assert!(
                    (f64::from(got) - want).abs() <= tol,
                    "{m}x{k}x{n}: {got} vs {want} (tolerance {tol})"
                );
            }
            for isa in Isa::available() {
                let mut out = vec![f32::NAN; m * n];
                q.matmul_with(&x, m, Some(&bias), &mut out, isa);
                let differ = out
                    .iter()
                    .zip(&scalar)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(differ, 0, "{isa:?} {m}x{k}x{n}: {differ} values differ");
            }
        }
    }

    /// Every activation quantiser path gives the same bytes, scales and sums; a row
    /// with a last partial group is padded with zeros; all-zero groups quantise to 0.
    #[test]
    fn activation_paths_agree_and_pad_with_zeros() {
        let (m, k) = (3, 70);
        let mut x = values(m * k, 0.29, 3.0);
        x[k..k + GROUP].fill(0.0);
        let scalar = Activations::quantize(&x, m, k, Isa::Scalar);
        for isa in Isa::available() {
            let a = Activations::quantize(&x, m, k, isa);
            assert_eq!(a.q, scalar.q, "{isa:?}");
            assert_eq!(a.scales, scalar.scales, "{isa:?}");
            assert_eq!(a.sums, scalar.sums, "{isa:?}");
        }
        let k32 = 3 * GROUP;
        for r in 0..m {
            assert!(scalar.q[r * k32 + k..(r + 1) * k32].iter().all(|&q| q == 0));
            let row = &scalar.q[r * k32..(r + 1) * k32];
            for g in 0..3 {
                let sum: i32 = row[g * GROUP..(g + 1) * GROUP]
                    .iter()
                    .map(|&q| i32::from(q))
                    .sum();
                assert_eq!(scalar.sums[r * 3 + g], sum);
            }
        }
        assert_eq!(scalar.scales[3], 0.0);
        assert!(scalar.q[k32..k32 + GROUP].iter().all(|&q| q == 0));
        // The largest value of each group maps to ±127.
        assert_eq!(
            scalar.q[..GROUP].iter().map(|q| q.unsigned_abs()).max(),
            Some(127)
        );
    }

    /// On general inputs the int8 product stays within the worst-case rounding bound of
    /// both operands (half a step of each group: `Σₖ |x|·Δw/2 + |w|·Δx/2 + Δx·Δw/4`) of
    /// the f32 product, on every path; zero rows give the bias.
    #[test]
    fn int8_product_is_within_the_rounding_bound_of_f32() {
        let (m, k, n) = (9, 384, 100);
        let w = values(k * n, 0.913, 0.1);
        let x = values(m * k, 0.211, 3.0);
        let bias = values(n, 0.5, 1.0);
        let q = Q8Matrix::from_in_out(&w, k, n);
        let want = reference(&x, &w, &bias, m, k, n);
        let group_max = |v: &dyn Fn(usize) -> f32, g: usize| {
            (g * GROUP..((g + 1) * GROUP).min(k))
                .map(|i| v(i).abs())
                .fold(0.0f32, f32::max)
                / 127.0
        };
        for isa in Isa::available() {
            let mut out = vec![0.0; m * n];
            q.matmul_with(&x, m, Some(&bias), &mut out, isa);
            for r in 0..m {
                let row = &x[r * k..(r + 1) * k];
                for c in 0..n {
                    let bound: f32 = (0..k)
                        .map(|i| {
                            let dx = group_max(&|j| row[j], i / GROUP);
                            let dw = group_max(&|j| w[j * n + c], i / GROUP);
                            row[i].abs() * dw / 2.0 + w[i * n + c].abs() * dx / 2.0 + dx * dw / 4.0
                        })
                        .sum();
                    let d = (f64::from(out[r * n + c]) - want[r * n + c]).abs() as f32;
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

    /// Groups matter: one large weight in a column spoils only its own group's
    /// resolution, so a small-valued group is still resolved finely.
    #[test]
    fn an_outlier_only_coarsens_its_own_group() {
        let (k, n) = (64, 1);
        let mut w: Vec<f32> = (0..k).map(|i| 0.001 * (i as f32 - 31.5)).collect();
        w[40] = 100.0;
        let q = Q8Matrix::from_in_out(&w, k, n);
        let d = q.dequantize();
        for i in 0..GROUP {
            assert!((d[i] - w[i]).abs() <= 0.0320 / 127.0 / 2.0 * 1.001, "{i}");
        }
    }

    #[test]
    fn packed_weights_take_a_byte_and_an_eighth_per_weight() {
        let q = Q8Matrix::from_in_out(&values(512 * 2048, 0.1, 1.0), 512, 2048);
        assert_eq!(q.bytes(), 512 * 2048 + 512 * 2048 / GROUP * 4);
        assert_eq!((q.k(), q.n()), (512, 2048));
    }

    #[test]
    fn no_inputs_give_the_bias() {
        let q = Q8Matrix::from_in_out(&[], 0, 3);
        let mut out = vec![f32::NAN; 6];
        q.matmul(&[], 2, Some(&[1.0, 2.0, 3.0]), &mut out);
        assert_eq!(out, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    }

    /// Activations quantised once (into reused buffers, after a larger and a smaller
    /// input) feed several matrices exactly as a fresh quantisation per matmul does, and
    /// `Accumulate` adds the product to what the output held, on every path.
    #[test]
    fn reused_activations_and_accumulate_equal_separate_matmuls() {
        let (m, k) = (13, 70);
        let x = values(m * k, 0.91, 1.5);
        let mut acts = Activations::quantize(&values(40 * 96, 0.2, 1.0), 40, 96, Isa::Scalar);
        for isa in Isa::available() {
            acts.requantize(&values(3 * 33, 0.4, 1.0), 3, 33, isa);
            acts.requantize(&x, m, k, isa);
            for (n, seed) in [(50, 0.37), (32, 0.53)] {
                let w = Q8Matrix::from_in_out(&values(k * n, seed, 0.2), k, n);
                let bias = values(n, 1.7, 0.5);
                let mut fresh = vec![0.0f32; m * n];
                w.matmul_with(&x, m, Some(&bias), &mut fresh, isa);
                let mut stored = vec![f32::NAN; m * n];
                w.matmul_quantized(&acts, Some(&bias), &mut stored, Epilogue::Store, isa);
                assert_eq!(stored, fresh, "{isa:?} n={n}: store");
                let residual = values(m * n, 2.3, 3.0);
                let mut summed = residual.clone();
                w.matmul_quantized(&acts, Some(&bias), &mut summed, Epilogue::Accumulate, isa);
                for ((s, r), f) in summed.iter().zip(&residual).zip(&fresh) {
                    assert_eq!(*s, r + f, "{isa:?} n={n}: accumulate");
                }
            }
        }
    }
}
