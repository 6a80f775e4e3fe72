//! Seeded sampling for test-time scaling (arXiv 2602.03873): N answers drawn at a
//! temperature instead of one greedy answer.
//!
//! The generator is SplitMix64, written out here rather than taken from a crate, so
//! that a seed gives the same draws on every platform and across dependency updates
//! (cached evaluation results are keyed by the seed). Each answer gets its own
//! stream, derived from the seed, the question text and the sample index
//! ([`SampleRng::for_answer`]), so a question's samples are the same whether it is
//! asked alone or within a prompt ensemble, and whatever order clips are scored in.

/// A small deterministic random number generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct SampleRng(u64);

impl SampleRng {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The stream of sample `sample` of `question` under `seed`.
    pub fn for_answer(seed: u64, question: &str, sample: usize) -> Self {
        // FNV-1a of the question, then mixed with the seed and index through SplitMix.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in question.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut rng = Self(seed ^ h.rotate_left(17));
        let a = rng.next_u64();
        Self(a ^ (sample as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draws an index from `softmax(logits / temperature)` (computed in f64). Entries that
/// are not finite get probability 0; `None` when none is finite or the temperature is
/// not finite and positive.
pub fn sample_index(logits: &[f32], temperature: f32, rng: &mut SampleRng) -> Option<usize> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return None;
    }
    let t = f64::from(temperature);
    let max = logits
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| f64::from(v))
        .fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return None;
    }
    let weight = |v: f32| {
        if v.is_finite() {
            ((f64::from(v) - max) / t).exp()
        } else {
            0.0
        }
    };
    let total: f64 = logits.iter().map(|&v| weight(v)).sum();
    let target = rng.next_f64() * total;
    let mut acc = 0.0;
    let mut last = None;
    for (i, &v) in logits.iter().enumerate() {
        let w = weight(v);
        if w > 0.0 {
            acc += w;
            last = Some(i);
            if acc > target {
                return Some(i);
            }
        }
    }
    // Rounding left `target` at the very top: the last index with any weight.
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |seed, q: &str, s| {
            let mut r = SampleRng::for_answer(seed, q, s);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, "q", 0), draw(1, "q", 0));
        assert_ne!(draw(1, "q", 0), draw(2, "q", 0));
        assert_ne!(draw(1, "q", 0), draw(1, "q", 1));
        assert_ne!(draw(1, "q", 0), draw(1, "r", 0));
        // SplitMix64's published first output for seed 0.
        assert_eq!(SampleRng::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn draws_follow_the_tempered_softmax() {
        let logits = [0.0f32, 2f32.ln(), f32::NEG_INFINITY];
        let mut rng = SampleRng::new(7);
        let mut counts = [0usize; 3];
        let n = 30_000;
        for _ in 0..n {
            counts[sample_index(&logits, 1.0, &mut rng).expect("finite")] += 1;
        }
        // p = (1/3, 2/3, 0).
        assert_eq!(counts[2], 0);
        let p1 = counts[1] as f64 / n as f64;
        assert!((p1 - 2.0 / 3.0).abs() < 0.015, "{p1}");
        // A tiny temperature is (almost surely) the argmax; a huge one nearly uniform.
        assert_eq!(sample_index(&[0.0, 1.0, 0.5], 1e-4, &mut rng), Some(1));
        assert_eq!(sample_index(&[f32::NAN], 1.0, &mut rng), None);
        assert_eq!(sample_index(&[0.0], 0.0, &mut rng), None);
    }
}
