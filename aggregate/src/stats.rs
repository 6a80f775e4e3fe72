//! The few statistics every part of emomon reads a distribution with, each
//! defined once: normalised entropy, argmax (and the top two), top-2 margin and the
//! nearest-rank percentile. The dashboard (f32 probabilities), the log summary and
//! the report (f64) all call these, so "entropy 0.79" means the same everywhere.

/// Normalised Shannon entropy `H(p)/ln K` in [0, 1]: 0 = one label certain,
/// 1 = uniform over the K labels.
///
/// Non-finite and non-positive entries count as 0 (`0 · ln 0 = 0`) and the rest is
/// renormalised first, so a distribution that sums to 0.999 after rounding reads
/// the same. Normalising by `ln K` makes the number comparable across label sets
/// (and the log base irrelevant). 0 when K ≤ 1 or nothing is positive.
pub fn normalised_entropy<T: Copy + Into<f64>>(p: &[T]) -> f64 {
    if p.len() <= 1 {
        return 0.0;
    }
    let positive = || {
        p.iter()
            .map(|&x| x.into())
            .filter(|x| x.is_finite() && *x > 0.0)
    };
    let total: f64 = positive().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let h: f64 = positive()
        .map(|x| {
            let q = x / total;
            -q * q.ln()
        })
        .sum();
    (h / (p.len() as f64).ln()).clamp(0.0, 1.0)
}

/// Indices of the largest and second-largest values, the lower index first on ties;
/// `None` for an empty slice. NaN sorts below every number, so it never wins.
pub fn top_two<T: Copy + Into<f64>>(p: &[T]) -> Option<(usize, Option<usize>)> {
    let key = |i: usize| {
        let v: f64 = p[i].into();
        if v.is_nan() { f64::NEG_INFINITY } else { v }
    };
    let mut first: Option<usize> = None;
    let mut second: Option<usize> = None;
    for i in 0..p.len() {
        match first {
            None => first = Some(i),
            Some(f) if key(i) > key(f) => {
                second = first;
                first = Some(i);
            }
            Some(_) => {
                if second.is_none_or(|s| key(i) > key(s)) {
                    second = Some(i);
                }
            }
        }
    }
    first.map(|f| (f, second))
}

/// Index of the largest value, the lowest index on ties (0 for an empty slice).
pub fn argmax<T: Copy + Into<f64>>(p: &[T]) -> usize {
    top_two(p).map_or(0, |(first, _)| first)
}

/// Highest minus second-highest value (the highest when there is one value; 0 for
/// none).
pub fn top2_margin<T: Copy + Into<f64>>(p: &[T]) -> f64 {
    match top_two(p) {
        Some((a, Some(b))) => p[a].into() - p[b].into(),
        Some((a, None)) => p[a].into().max(0.0),
        None => 0.0,
    }
}

/// Nearest-rank percentile (`q` in 0–1) of unsorted values: the smallest value
/// with at least `q · n` values at or below it. `None` when there are no values.
///
/// Nearest-rank (not interpolated) so a reported latency is one that happened.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn entropy_by_hand() {
        close(normalised_entropy(&[1.0, 0.0, 0.0, 0.0]), 0.0);
        close(normalised_entropy(&[0.25; 4]), 1.0);
        // H(0.5, 0.5, 0, 0) = ln 2; / ln 4 = 0.5.
        close(normalised_entropy(&[0.5, 0.5, 0.0, 0.0]), 0.5);
        close(normalised_entropy(&[1.0]), 0.0);
        // Unnormalised input reads like its normalisation; f32 works too.
        close(normalised_entropy(&[2.0f32, 2.0, 0.0, 0.0]), 0.5);
        close(normalised_entropy(&[f64::NAN, 1.0]), 0.0);
        let mixed = normalised_entropy(&[0.6, 0.35, 0.05]);
        assert!(mixed > 0.7 && mixed < 0.9, "{mixed}");
    }

    #[test]
    fn argmax_top_two_and_margin() {
        assert_eq!(top_two(&[0.1, 0.6, 0.3]), Some((1, Some(2))));
        assert_eq!(
            top_two(&[0.5, 0.5]),
            Some((0, Some(1))),
            "lower index first"
        );
        assert_eq!(top_two(&[f64::NAN, 0.2, 0.1]), Some((1, Some(2))));
        assert_eq!(top_two::<f64>(&[]), None);
        assert_eq!(top_two(&[0.3]), Some((0, None)));
        assert_eq!(argmax(&[0.2f32, 0.2, 0.6]), 2);
        close(top2_margin(&[0.1, 0.6, 0.3]), 0.3);
        close(top2_margin(&[0.5, 0.5]), 0.0);
        close(top2_margin(&[1.0]), 1.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&v, 0.5), Some(3.0));
        assert_eq!(percentile(&v, 0.95), Some(5.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
