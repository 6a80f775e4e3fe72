//! emomon's own CPU kernels and the choice of instruction set they run with.
//!
//! One binary serves every x86-64 laptop: each kernel has a scalar version, an AVX2
//! version and (where it pays) an AVX-512 version, and picks the best one the CPU has
//! at run time. `EMOMON_CPU_KERNELS=auto|avx512|avx2|scalar` caps that choice, so that
//! the slower paths can be exercised (and compared with the fast one) on a machine that
//! has the fast one; tests call the per-path functions directly with [`Isa::available`].
//!
//! The f32 matmuls run in burn-flex's `gemm` (AVX-512 kernels through burn-flex's
//! `x86-v4` feature, the `avx512` feature of this crate). `gemm` chooses its kernel once
//! per process from the CPU's features and has no switch of its own, so this variable
//! does not reach it; building without the `avx512` feature gives its AVX2 path.

use std::sync::OnceLock;

pub mod f16;
pub mod lstm;
pub mod q8;

/// Panics unless `x` is `[m, k]`, `out` is `[m, n]` and `bias` (if any) has `n` values:
/// the contract of every `out = x · W + bias` kernel here.
pub(crate) fn check_matmul_shapes(
    x: &[f32],
    out: &[f32],
    bias: Option<&[f32]>,
    [m, k, n]: [usize; 3],
) {
    assert_eq!(x.len(), m * k, "input of {} values for [{m}, {k}]", x.len());
    check_output_shapes(out, bias, [m, n]);
}

/// The output half of [`check_matmul_shapes`], for kernels whose input is checked
/// elsewhere (activations quantised beforehand): `out` is `[m, n]`, `bias` has `n`.
pub(crate) fn check_output_shapes(out: &[f32], bias: Option<&[f32]>, [m, n]: [usize; 2]) {
    assert_eq!(
        out.len(),
        m * n,
        "output of {} values for [{m}, {n}]",
        out.len()
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), n, "bias of {} values for {n} outputs", b.len());
    }
}

/// An output pointer that parallel tasks share, each writing its own disjoint part of
/// the buffer (rows × columns rectangles of a matmul, heads of an attention).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
// SAFETY: only used for disjoint writes, which the users' own SAFETY comments argue.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer `i` values on (a method, so that closures capture the whole `Sync`
    /// wrapper rather than its raw field).
    ///
    /// # Safety
    /// `i` is within the buffer.
    pub unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: the caller keeps `i` within the buffer.
        unsafe { self.0.add(i) }
    }
}

/// The environment variable that caps the instruction set of emomon's kernels.
pub const ENV: &str = "EMOMON_CPU_KERNELS";

/// An instruction-set level of the kernels, from slowest to fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, any CPU.
    Scalar,
    /// AVX2 + FMA (x86-64 since 2013/2015).
    Avx2,
    /// AVX-512 F/BW/VL with VNNI (Intel since Cascade Lake / Ice Lake, AMD Zen 4).
    Avx512,
}

impl Isa {
    /// The name used in [`ENV`].
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The fastest level this CPU supports.
    pub fn detected() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Every level this CPU can run, slowest first (the paths tests compare).
    pub fn available() -> Vec<Isa> {
        let best = Isa::detected();
        [Isa::Scalar, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|&i| i <= best)
            .collect()
    }
}

/// Parses a value of [`ENV`]: `None` for `auto` (or empty), else the cap.
pub fn parse_cap(value: &str) -> Result<Option<Isa>, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => Ok(None),
        "avx512" => Ok(Some(Isa::Avx512)),
        "avx2" => Ok(Some(Isa::Avx2)),
        "scalar" => Ok(Some(Isa::Scalar)),
        other => Err(format!(
            "{ENV}={other:?} is not one of auto, avx512, avx2, scalar"
        )),
    }
}

/// The level the kernels use: the detected one, capped by [`ENV`] (read once). A bad
/// value is reported once in the log and ignored (kernels cannot fail on it).
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let best = Isa::detected();
        let cap = match std::env::var(ENV) {
            Ok(v) => parse_cap(&v).unwrap_or_else(|e| {
                tracing::warn!("{e}; using the CPU's best ({})", best.name());
                None
            }),
            Err(_) => None,
        };
        let chosen = cap.map_or(best, |c| c.min(best));
        tracing::debug!(
            kernels = chosen.name(),
            detected = best.name(),
            "CPU kernels"
        );
        chosen
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_parse_and_bad_values_name_the_variable() {
        assert_eq!(parse_cap("auto"), Ok(None));
        assert_eq!(parse_cap(""), Ok(None));
        assert_eq!(parse_cap(" AVX2 "), Ok(Some(Isa::Avx2)));
        assert_eq!(parse_cap("scalar"), Ok(Some(Isa::Scalar)));
        assert_eq!(parse_cap("avx512"), Ok(Some(Isa::Avx512)));
        let e = parse_cap("sse9").unwrap_err();
        assert!(e.contains(ENV) && e.contains("avx2"), "{e}");
    }

    #[test]
    fn available_levels_are_ordered_and_end_at_the_detected_one() {
        let a = Isa::available();
        assert_eq!(a.first(), Some(&Isa::Scalar));
        assert_eq!(a.last(), Some(&Isa::detected()));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(isa() <= Isa::detected());
    }
}
