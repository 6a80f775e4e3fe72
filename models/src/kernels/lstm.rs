//! The recurrence of one LSTM layer on the CPU, on host buffers, on the calling thread.
//!
//! Why: on burn each time step of a layer is about a dozen small ops (matmul, add,
//! sigmoid, four slices, tanh, products); resemblyzer's encoder on a 3 s utterance is
//! 3 layers × 160 steps of them, ~5,800 dispatches that cost more than the arithmetic.
//! The input projection `x · W_ih + b` of all steps stays one large matmul (the caller's,
//! on burn); what is left, `gates = projected[t] + h · W_hh` and the cell update, runs
//! here as one loop: the `[B, H] · [H, 4H]` product in a register-tiled kernel per
//! instruction set (AVX-512, AVX2 + FMA, scalar) chosen through [`super::isa`], every
//! row of the batch (the utterance's partial windows) sharing each weight load.
//!
//! Why one thread: the hidden units can be split over two cores (each owning its units'
//! gate columns, exchanging `h` through a spin barrier every step), and an earlier
//! version of this kernel did so. On a 2-core machine whose other core is busy (the
//! emotion model runs beside the embedding; here, other builds), every step then waits
//! for a descheduled partner: `emomon bench speakers` measured median 61.7 ms per
//! utterance with the split against 13.6 ms on one thread. Giving each of two rayon
//! tasks half of the batch's sequences (independent, so no waiting) did no better on that
//! machine: median 18.7–20.0 ms, as much CPU time as wall time, against 12.8–14.4 ms on
//! one thread (each half streams all of `W_hh` for fewer rows, and the tasks rarely ran
//! at once).
//!
//! The gate nonlinearities are a rational `tanh` (Eigen's `generic_fast_tanh_float`,
//! within 4e-7 of the true value) with `σ(x) = ½ + ½·tanh(x/2)`, written to vectorise.

use super::Isa;

/// Gate columns per packed weight tile: four AVX-512 registers, eight AVX2 ones.
const TILE: usize = 64;
/// Most batch rows the product keeps in registers at once.
const ROWS: usize = 4;

/// `W_hh` of one layer, packed for the kernel.
#[derive(Clone)]
pub struct Recurrence {
    hidden: usize,
    /// `4 · hidden` rounded up to [`TILE`]; the padding columns have zero weights.
    width: usize,
    /// `[width / TILE][hidden][TILE]`: each tile's weights contiguous, read in order.
    w: Vec<f32>,
}

impl std::fmt::Debug for Recurrence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recurrence {{ hidden: {} }}", self.hidden)
    }
}

impl Recurrence {
    /// Packs `w_hh_t`, `[hidden, 4·hidden]` row-major (`W_hhᵀ`, PyTorch's gate order
    /// i, f, g, o along the columns).
    pub fn new(w_hh_t: &[f32], hidden: usize) -> Self {
        let gates = 4 * hidden;
        assert_eq!(
            w_hh_t.len(),
            hidden * gates,
            "W_hh of {} values for hidden {hidden}",
            w_hh_t.len()
        );
        let width = gates.div_ceil(TILE) * TILE;
        let mut w = vec![0.0f32; width * hidden];
        for (k, row) in w_hh_t.chunks_exact(gates).enumerate() {
            for (col, &v) in row.iter().enumerate() {
                w[((col / TILE) * hidden + k) * TILE + col % TILE] = v;
            }
        }
        Self { hidden, width, w }
    }

    /// Hidden units.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Runs the layer over `steps` steps of `batch` sequences from zero state, given
    /// `projected = x · W_ihᵀ + b_ih + b_hh` as `[batch, steps, 4·hidden]`. Writes every
    /// step's hidden state to `outputs` (`[batch, steps, hidden]`) when given and returns
    /// the last one, `[batch, hidden]`. Uses the instruction set of [`super::isa`].
    pub fn run(
        &self,
        projected: &[f32],
        batch: usize,
        steps: usize,
        outputs: Option<&mut [f32]>,
    ) -> Vec<f32> {
        self.run_with(projected, batch, steps, outputs, super::isa())
    }

    /// [`run`](Self::run) on a given path (one of [`Isa::available`]).
    pub fn run_with(
        &self,
        projected: &[f32],
        batch: usize,
        steps: usize,
        mut outputs: Option<&mut [f32]>,
        isa: Isa,
    ) -> Vec<f32> {
        let (h_dim, width) = (self.hidden, self.width);
        let gates_n = 4 * h_dim;
        assert_eq!(
            projected.len(),
            batch * steps * gates_n,
            "projection of {} values for [{batch}, {steps}, {gates_n}]",
            projected.len()
        );
        if let Some(out) = outputs.as_deref() {
            assert_eq!(
                out.len(),
                batch * steps * h_dim,
                "outputs of {} values for [{batch}, {steps}, {h_dim}]",
                out.len()
            );
        }
        let mut h = vec![0.0f32; batch * h_dim];
        let mut c = vec![0.0f32; batch * h_dim];
        let mut gates = vec![0.0f32; batch * width];
        for t in 0..steps {
            for (b, row) in gates.chunks_exact_mut(width).enumerate() {
                row[..gates_n].copy_from_slice(&projected[(b * steps + t) * gates_n..][..gates_n]);
            }
            if t > 0 {
                accumulate(&h, batch, h_dim, &self.w, width, &mut gates, isa);
            }
            cell_update(&gates, width, h_dim, &mut c, &mut h, isa);
            if let Some(out) = outputs.as_deref_mut() {
                for (b, new) in h.chunks_exact(h_dim).enumerate() {
                    out[(b * steps + t) * h_dim..][..h_dim].copy_from_slice(new);
                }
            }
        }
        h
    }
}

/// `gates[b, ..] += h[b, ..] · W` over the packed columns (`width` of them).
fn accumulate(
    h: &[f32],
    batch: usize,
    hidden: usize,
    packed: &[f32],
    width: usize,
    gates: &mut [f32],
    isa: Isa,
) {
    for tile in 0..width / TILE {
        let w = &packed[tile * hidden * TILE..(tile + 1) * hidden * TILE];
        let mut r0 = 0;
        while r0 < batch {
            let rows = ROWS.min(batch - r0);
            let tile = Tile {
                h: &h[r0 * hidden..(r0 + rows) * hidden],
                hidden,
                w,
                g: &mut gates[r0 * width..(r0 + rows) * width],
                width,
                at: tile * TILE,
            };
            match isa {
                // SAFETY (both): `isa` is at most the detected level; the slices hold
                // `rows` rows of `hidden` inputs and of `width ≥ at + TILE` gates.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { x86::tile_avx512(tile) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { x86::tile_avx2(tile) },
                _ => tile_scalar(tile),
            }
            r0 += rows;
        }
    }
}

/// One call of a tile kernel: `g[r, at..at+64] += h[r, ..] · w` for each row `r` of `h`
/// (at most [`ROWS`]), `w` one packed tile `[hidden][64]`, `g` rows of `width` gates.
struct Tile<'a> {
    h: &'a [f32],
    hidden: usize,
    w: &'a [f32],
    g: &'a mut [f32],
    width: usize,
    at: usize,
}

impl Tile<'_> {
    /// Rows in the call.
    fn rows(&self) -> usize {
        self.h.len() / self.hidden
    }
}

/// One tile of [`accumulate`] in plain Rust.
fn tile_scalar(t: Tile) {
    let Tile {
        h,
        hidden,
        w,
        g,
        width,
        at,
    } = t;
    for (h_row, g_row) in h.chunks_exact(hidden).zip(g.chunks_exact_mut(width)) {
        let mut acc = [0.0f32; TILE];
        acc.copy_from_slice(&g_row[at..at + TILE]);
        for (&x, w_row) in h_row.iter().zip(w.chunks_exact(TILE)) {
            for (a, &wv) in acc.iter_mut().zip(w_row) {
                *a += x * wv;
            }
        }
        g_row[at..at + TILE].copy_from_slice(&acc);
    }
}

/// The cell update for every row: `c ← σ(f)·c + σ(i)·tanh(g)`,
/// `h = σ(o)·tanh(c)`, from the gate rows `[i | f | g | o | padding]` (`width` long).
fn cell_update(gates: &[f32], width: usize, units: usize, c: &mut [f32], h: &mut [f32], isa: Isa) {
    match isa {
        // SAFETY (both): `isa` is at most the detected level.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::cell_update_avx512(gates, width, units, c, h) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::cell_update_avx2(gates, width, units, c, h) },
        _ => cell_update_portable(gates, width, units, c, h),
    }
}

#[inline(always)]
fn cell_update_portable(gates: &[f32], width: usize, units: usize, c: &mut [f32], h: &mut [f32]) {
    for ((g, c), h) in gates
        .chunks_exact(width)
        .zip(c.chunks_exact_mut(units))
        .zip(h.chunks_exact_mut(units))
    {
        let (i, rest) = g.split_at(units);
        let (f, rest) = rest.split_at(units);
        let (gg, rest) = rest.split_at(units);
        let o = &rest[..units];
        for j in 0..units {
            let cj = sigmoid(f[j]) * c[j] + sigmoid(i[j]) * tanh(gg[j]);
            c[j] = cj;
            h[j] = sigmoid(o[j]) * tanh(cj);
        }
    }
}

/// `1 / (1 + e⁻ˣ)` as `½ + ½·tanh(x/2)` (within 2e-7).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    0.5 * tanh(0.5 * x) + 0.5
}

/// tanh as a branch-free rational function (Eigen's `generic_fast_tanh_float`: odd
/// degree-13 over even degree-6 polynomial on [-7.99, 7.99], where tanh reaches ±1 in
/// f32), within 4e-7 of the true value. Plain products and sums, not `mul_add`: on the
/// scalar path (no FMA) `mul_add` is a call to a software fused multiply-add.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let x = x.clamp(-7.998_811_7, 7.998_811_7);
    let x2 = x * x;
    let mut p = x2 * -2.760_768_5e-16 + 2.000_188e-13;
    p = x2 * p + -8.604_672e-11;
    p = x2 * p + 5.122_297e-8;
    p = x2 * p + 1.485_722_4e-5;
    p = x2 * p + 6.372_619_3e-4;
    p = x2 * p + 4.893_524_6e-3;
    let mut q = x2 * 1.198_258_4e-6 + 1.185_347_1e-4;
    q = x2 * q + 2.268_434_6e-3;
    q = x2 * q + 4.893_525e-3;
    x * p / q
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{ROWS, TILE, Tile};

    /// Checks the slices of a tile call for `R` rows (so the pointer arithmetic stays
    /// inside them).
    fn rows_fit<const R: usize>(t: &Tile) {
        assert!(
            t.h.len() == R * t.hidden
                && t.w.len() == t.hidden * TILE
                && t.g.len() == R * t.width
                && t.at + TILE <= t.width,
            "LSTM tile: {} inputs, {} weights, {} gates for {R} rows of {} → {} at {}",
            t.h.len(),
            t.w.len(),
            t.g.len(),
            t.hidden,
            t.width,
            t.at
        );
    }

    /// `g[r, at..at+64] += h[r, ..] · w` for up to [`ROWS`] rows, on one instruction set:
    /// the 64 columns in passes of `$regs` registers of `$lanes` floats, all rows'
    /// accumulators in registers, each weight load shared by every row and each `h`
    /// value broadcast once per row and step of `k`. One body for both instruction sets;
    /// `$cell` is [`super::cell_update_portable`] compiled for the same set (it vectorises).
    macro_rules! tile_kernel {
        ($name:ident, $rows:ident, $cell:ident, $features:literal, $vec:ty, $lanes:literal,
         $regs:literal, $zero:ident, $load:ident, $store:ident, $splat:ident, $fmadd:ident) => {
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $cell(
                gates: &[f32],
                width: usize,
                units: usize,
                c: &mut [f32],
                h: &mut [f32],
            ) {
                super::cell_update_portable(gates, width, units, c, h);
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(t: Tile) {
                match t.rows() {
                    // SAFETY (all): the caller's bounds, checked by `rows_fit`.
                    1 => unsafe { $rows::<1>(t) },
                    2 => unsafe { $rows::<2>(t) },
                    3 => unsafe { $rows::<3>(t) },
                    _ => unsafe { $rows::<ROWS>(t) },
                }
            }

            #[target_feature(enable = $features)]
            unsafe fn $rows<const R: usize>(t: Tile) {
                rows_fit::<R>(&t);
                let Tile {
                    h,
                    hidden,
                    w,
                    g,
                    width,
                    at,
                } = t;
                // SAFETY: every offset is inside the slices, checked by `rows_fit`.
                unsafe {
                    let (gp, hp, wp) = (g.as_mut_ptr(), h.as_ptr(), w.as_ptr());
                    for pass in 0..TILE / ($lanes * $regs) {
                        let col = at + pass * $lanes * $regs;
                        let mut acc: [[$vec; $regs]; R] = [[$zero(); $regs]; R];
                        for (r, a) in acc.iter_mut().enumerate() {
                            for (j, v) in a.iter_mut().enumerate() {
                                *v = $load(gp.add(r * width + col + $lanes * j));
                            }
                        }
                        for k in 0..hidden {
                            let wk = wp.add(k * TILE + col - at);
                            let wv: [$vec; $regs] =
                                std::array::from_fn(|j| $load(wk.add($lanes * j)));
                            for (r, a) in acc.iter_mut().enumerate() {
                                let x = $splat(*hp.add(r * hidden + k));
                                for (v, &wj) in a.iter_mut().zip(&wv) {
                                    *v = $fmadd(x, wj, *v);
                                }
                            }
                        }
                        for (r, a) in acc.iter().enumerate() {
                            for (j, &v) in a.iter().enumerate() {
                                $store(gp.add(r * width + col + $lanes * j), v);
                            }
                        }
                    }
                }
            }
        };
    }

    tile_kernel!(
        tile_avx512,
        tile_avx512_rows,
        cell_update_avx512,
        "avx512f,avx2,fma",
        __m512,
        16,
        4,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps
    );
    tile_kernel!(
        tile_avx2,
        tile_avx2_rows,
        cell_update_avx2,
        "avx2,fma",
        __m256,
        8,
        2,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic values in about [-amp, amp].
    pub(crate) fn values(n: usize, seed: f32, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * seed + 0.3).sin() * amp)
            .collect()
    }

    /// The recurrence in f64, straight from the LSTM equations (`w_hh_t` `[H, 4H]`).
    fn reference(
        projected: &[f32],
        w_hh_t: &[f32],
        batch: usize,
        steps: usize,
        hidden: usize,
    ) -> Vec<f64> {
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let mut out = vec![0.0f64; batch * steps * hidden];
        for b in 0..batch {
            let (mut h, mut c) = (vec![0.0f64; hidden], vec![0.0f64; hidden]);
            for t in 0..steps {
                let x = &projected[(b * steps + t) * 4 * hidden..][..4 * hidden];
                let gate = |q: usize, j: usize| {
                    let col = q * hidden + j;
                    f64::from(x[col])
                        + (0..hidden)
                            .map(|k| h[k] * f64::from(w_hh_t[k * 4 * hidden + col]))
                            .sum::<f64>()
                };
                let g: Vec<[f64; 4]> = (0..hidden)
                    .map(|j| [gate(0, j), gate(1, j), gate(2, j), gate(3, j)])
                    .collect();
                for j in 0..hidden {
                    let [i, f, gg, o] = g[j];
                    c[j] = sig(f) * c[j] + sig(i) * gg.tanh();
                    h[j] = sig(o) * c[j].tanh();
                    out[(b * steps + t) * hidden + j] = h[j];
                }
            }
        }
        out
    }

    #[test]
    fn tanh_and_sigmoid_are_within_4e_7() {
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let t = f64::from(tanh(x));
            assert!((t - f64::from(x).tanh()).abs() < 4e-7, "tanh({x}) = {t}");
            let s = f64::from(sigmoid(2.0 * x));
            let want = 1.0 / (1.0 + (-2.0 * f64::from(x)).exp());
            assert!((s - want).abs() < 4e-7, "σ({}) = {s}", 2.0 * x);
        }
        assert_eq!(tanh(1e9), tanh(8.0));
        assert!(tanh(0.0) == 0.0 && tanh(-1e-30).abs() < 1e-29);
    }

    #[test]
    fn every_path_matches_the_equations() {
        // (batch, steps, hidden): one sequence, one step, hidden not a multiple of any
        // SIMD width nor of the tile, more rows than one register block, long runs.
        let shapes = [
            (1, 1, 7),
            (1, 5, 40),
            (3, 1, 33),
            (5, 9, 70),
            (2, 200, 19),
            (3, 60, 128),
        ];
        for (batch, steps, hidden) in shapes {
            let w = values(hidden * 4 * hidden, 0.37, 1.2 / (hidden as f32).sqrt());
            let x = values(batch * steps * 4 * hidden, 0.11, 1.5);
            let want = reference(&x, &w, batch, steps, hidden);
            let rec = Recurrence::new(&w, hidden);
            for isa in Isa::available() {
                let mut outs = vec![f32::NAN; batch * steps * hidden];
                let last = rec.run_with(&x, batch, steps, Some(&mut outs), isa);
                let err = outs
                    .iter()
                    .zip(&want)
                    .map(|(&a, &b)| (f64::from(a) - b).abs())
                    .fold(0.0, f64::max);
                let case = format!("{batch}×{steps}×{hidden}, {}", isa.name());
                assert!(err < 1e-5, "{case}: max error {err}");
                for b in 0..batch {
                    assert_eq!(
                        &last[b * hidden..(b + 1) * hidden],
                        &outs[((b + 1) * steps - 1) * hidden..][..hidden],
                        "{case}: final state"
                    );
                }
                let alone = rec.run_with(&x, batch, steps, None, isa);
                assert_eq!(alone, last, "{case}: without outputs");
            }
        }
    }

    #[test]
    fn empty_runs_give_a_zero_state() {
        let rec = Recurrence::new(&values(4 * 64 * 64, 0.2, 0.1), 64);
        assert_eq!(rec.hidden(), 64);
        assert_eq!(rec.run(&[], 2, 0, None), vec![0.0; 128]);
        assert!(rec.run(&[], 0, 3, None).is_empty());
    }
}
