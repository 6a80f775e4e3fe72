//! Transformer pieces on plain row-major `f32` buffers, for layers that run on the CPU
//! outside burn's tensors (the int8 encoder, [`crate::whisper`]).
//!
//! Why outside burn: between two int8 matmuls, flex's ops each allocate (and zero) a new
//! tensor, and splitting heads for attention copies `[t, d]` into `[heads, t, d/heads]`
//! and back; with the matmuls themselves fast, that glue was a fifth to a quarter of the int8
//! encoder's time. Here attention reads each head's columns where the projections wrote
//! them (strided views through the `gemm` crate, which burn-flex itself multiplies with),
//! and layer norms write into buffers the caller reuses.

use burn::nn::LayerNorm;
use burn::tensor::DType;
use rayon::prelude::*;

use super::LAYER_NORM_EPSILON;
use super::cpu::softmax_row;
use crate::kernels::{Isa, SendPtr};

/// A LayerNorm's parameters as plain vectors (`torch.nn.LayerNorm` over the last axis).
#[derive(Debug, Clone)]
pub(crate) struct HostLayerNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub epsilon: f32,
}

impl HostLayerNorm {
    /// The parameters of `ln`, made by [`super::load_layer_norm`] (so its ε is
    /// [`LAYER_NORM_EPSILON`]; burn keeps ε private), when they are f32.
    pub fn from_layer_norm(ln: &LayerNorm) -> Option<Self> {
        let read = |t: burn::tensor::Tensor<1>| {
            (t.dtype() == DType::F32)
                .then(|| t.into_data().try_into_vec::<f32>().ok())
                .flatten()
        };
        let gamma = read(ln.gamma.val())?;
        let beta = match &ln.beta {
            Some(b) => read(b.val())?,
            None => vec![0.0; gamma.len()],
        };
        Some(Self {
            gamma,
            beta,
            epsilon: LAYER_NORM_EPSILON as f32,
        })
    }

    /// `out[r] = (x[r] − mean) / √(var + ε) · γ + β` for each row of `x` (`[rows, d]`).
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        let d = self.gamma.len();
        assert_eq!(
            self.beta.len(),
            d,
            "LayerNorm β of {} for γ of {d}",
            self.beta.len()
        );
        assert_eq!(
            x.len(),
            out.len(),
            "LayerNorm input and output sizes differ"
        );
        assert!(
            d > 0 && x.len().is_multiple_of(d),
            "{} values are not rows of {d}",
            x.len()
        );
        for (row, out) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mean = lane_sum(row, |v| v) / d as f32;
            let var = lane_sum(row, |v| (v - mean) * (v - mean)) / d as f32;
            let inv = 1.0 / (var + self.epsilon).sqrt();
            for (((o, &v), &g), &b) in out.iter_mut().zip(row).zip(&self.gamma).zip(&self.beta) {
                *o = (v - mean) * inv * g + b;
            }
        }
    }
}

/// `Σ f(v)` over `values`, in eight lanes so that the loop vectorises.
#[inline]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for c in &mut chunks {
        for (acc, &v) in lanes.iter_mut().zip(c) {
            *acc += f(v);
        }
    }
    chunks.remainder().iter().map(|&v| f(v)).sum::<f32>() + lanes.iter().sum::<f32>()
}

/// Query rows one attention task takes: its score block (`rows × keys` f32, 192 KB at
/// 375 keys) stays in L2, and a 5 s utterance (250 frames, 8 heads) makes 16 tasks.
const QUERY_BLOCK: usize = 128;

/// Shape of a bidirectional multi-head self-attention over `batch` sequences of `t`
/// positions, `heads` heads side by side in rows of width `d`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttentionShape {
    pub batch: usize,
    pub t: usize,
    pub d: usize,
    pub heads: usize,
}

/// `ctx = softmax(q kᵀ / √(d/heads)) v` for each sequence and head, where `q`, `k`, `v`
/// and `ctx` are `[batch · t, d]` with head `h` in columns `h·d/heads ..`: what the
/// projections write, and what the output projection reads, with no reordering.
/// Tasks (sequence, head, block of query rows) spread over the current rayon pool.
pub(crate) fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ctx: &mut [f32],
    shape: AttentionShape,
    isa: Isa,
) {
    let AttentionShape { batch, t, d, heads } = shape;
    assert!(
        heads > 0 && d % heads == 0,
        "{d} columns do not split into {heads} heads"
    );
    for (name, buf) in [
        ("queries", q),
        ("keys", k),
        ("values", v),
        ("output", &*ctx),
    ] {
        assert_eq!(
            buf.len(),
            batch * t * d,
            "{name}: {} values for [{batch}·{t}, {d}]",
            buf.len()
        );
    }
    if batch * t == 0 {
        return;
    }
    let dh = d / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let blocks = t.div_ceil(QUERY_BLOCK);
    let out = SendPtr(ctx.as_mut_ptr());
    (0..batch * heads * blocks).into_par_iter().for_each_init(
        || vec![0.0f32; QUERY_BLOCK.min(t) * t],
        |scores, task| {
            let (seq, rest) = (task / (heads * blocks), task % (heads * blocks));
            let (h, block) = (rest / blocks, rest % blocks);
            let r0 = block * QUERY_BLOCK;
            let rows = QUERY_BLOCK.min(t - r0);
            let scores = &mut scores[..rows * t];
            let first = seq * t * d + h * dh;
            // SAFETY (both products): every view stays inside its buffer (first row and
            // column and the strides are within `[batch · t, d]`, asserted above;
            // `scores` holds `rows × t`); the `ctx` rectangle (rows r0.., columns of head
            // h, sequence seq) is written by this task only.
            unsafe {
                // scores[i, j] = q[r0 + i, head] · k[j, head]
                single_thread_matmul(
                    [rows, t, dh],
                    Strided::rows(scores.as_mut_ptr(), t),
                    Strided::rows(q.as_ptr().add(first + r0 * d), d),
                    Strided::columns(k.as_ptr().add(first), d),
                );
            }
            for row in scores.chunks_exact_mut(t) {
                softmax_row(row, scale, isa);
            }
            // SAFETY: as above.
            unsafe {
                // ctx[r0 + i, head] = Σ_j p[i, j] · v[j, head]
                single_thread_matmul(
                    [rows, dh, t],
                    Strided::rows(out.at(first + r0 * d), d),
                    Strided::rows(scores.as_ptr(), t),
                    Strided::rows(v.as_ptr().add(first), d),
                );
            }
        },
    );
}

/// A matrix view: element `(i, j)` at `ptr + i·row + j·col`.
#[derive(Clone, Copy)]
struct Strided<P> {
    ptr: P,
    row: isize,
    col: isize,
}

impl<P> Strided<P> {
    /// Rows of contiguous values, `stride` apart.
    fn rows(ptr: P, stride: usize) -> Self {
        Self {
            ptr,
            row: stride as isize,
            col: 1,
        }
    }

    /// The transpose of [`rows`](Self::rows): element `(i, j)` is row `j`'s value `i`.
    fn columns(ptr: P, stride: usize) -> Self {
        Self {
            ptr,
            row: 1,
            col: stride as isize,
        }
    }
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]` on the calling thread (the callers run many of
/// these side by side), with `gemm`'s kernels for this CPU.
///
/// # Safety
/// Every view addresses valid memory for its shape; `dst` is written by no one else.
unsafe fn single_thread_matmul(
    [m, n, k]: [usize; 3],
    dst: Strided<*mut f32>,
    lhs: Strided<*const f32>,
    rhs: Strided<*const f32>,
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            dst.col,
            dst.row,
            false,
            lhs.ptr,
            lhs.col,
            lhs.row,
            rhs.ptr,
            rhs.col,
            rhs.row,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Isa;

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * seed + 0.2).sin() * 1.7)
            .collect()
    }

    /// Attention in f64, one sequence, head and query at a time.
    fn reference(q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) -> Vec<f64> {
        let dh = s.d / s.heads;
        let mut out = vec![0.0f64; s.batch * s.t * s.d];
        for b in 0..s.batch {
            for h in 0..s.heads {
                for i in 0..s.t {
                    let row = |m: &[f32], r: usize| -> Vec<f64> {
                        let at = (b * s.t + r) * s.d + h * dh;
                        m[at..at + dh].iter().map(|&x| f64::from(x)).collect()
                    };
                    let qi = row(q, i);
                    let logits: Vec<f64> = (0..s.t)
                        .map(|j| {
                            let kj = row(k, j);
                            qi.iter().zip(&kj).map(|(a, b)| a * b).sum::<f64>() / (dh as f64).sqrt()
                        })
                        .collect();
                    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for (j, w) in e.iter().enumerate() {
                        let vj = row(v, j);
                        for c in 0..dh {
                            out[(b * s.t + i) * s.d + h * dh + c] += w / z * vj[c];
                        }
                    }
                }
            }
        }
        out
    }

    /// Odd shapes (one position, a query block and a bit, two sequences, a head width
    /// that is not a multiple of the SIMD width) on every instruction set this CPU runs.
    #[test]
    fn attention_matches_f64_on_odd_shapes_on_every_path() {
        let shapes = [
            AttentionShape {
                batch: 1,
                t: 1,
                d: 8,
                heads: 2,
            },
            AttentionShape {
                batch: 2,
                t: 7,
                d: 12,
                heads: 3,
            },
            AttentionShape {
                batch: 1,
                t: QUERY_BLOCK + 3,
                d: 20,
                heads: 4,
            },
        ];
        for s in shapes {
            let n = s.batch * s.t * s.d;
            let (q, k, v) = (values(n, 0.37), values(n, 0.71), values(n, 1.13));
            let want = reference(&q, &k, &v, s);
            for isa in Isa::available() {
                let mut got = vec![f32::NAN; n];
                attention(&q, &k, &v, &mut got, s, isa);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(*g) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{s:?} {isa:?} value {i}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn layer_norm_matches_f64() {
        let d = 37;
        let norm = HostLayerNorm {
            gamma: values(d, 0.3),
            beta: values(d, 0.9),
            epsilon: 1e-5,
        };
        let x: Vec<f32> = values(3 * d, 0.55).iter().map(|v| v * 40.0 + 3.0).collect();
        let mut out = vec![f32::NAN; x.len()];
        norm.apply(&x, &mut out);
        for (row, got) in x.chunks_exact(d).zip(out.chunks_exact(d)) {
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / d as f64;
            let var = row
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / d as f64;
            for (c, (&v, &g)) in row.iter().zip(got).enumerate() {
                let want = (f64::from(v) - mean) / (var + 1e-5).sqrt() * f64::from(norm.gamma[c])
                    + f64::from(norm.beta[c]);
                assert!((f64::from(g) - want).abs() < 1e-5, "{g} vs {want}");
            }
        }
    }
}
