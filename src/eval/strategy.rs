//! Test-time scaling aggregators (arXiv 2602.03873): how the distributions of several
//! answers to one clip — a prompt ensemble, N sampled answers, or both — become the one
//! distribution `emomon eval` scores. Formulas in docs/test-time-scaling.md.
//!
//! The confidence of a distribution `p` over `K` labels is its top probability,
//! `c(p) = max_k p_k`: the quantity the reliability diagram and ECE calibrate, so a
//! confidence-weighted ensemble leans on the answers the model itself is surest of in
//! exactly the sense the calibration metrics check.

use std::fmt;
use std::str::FromStr;

/// Aggregation errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    /// Every answer of the clip was unreadable.
    #[error("no readable answer to aggregate")]
    NoMembers,
    /// Answers over different numbers of labels.
    #[error("answers have different lengths ({0} and {1})")]
    Length(usize, usize),
    /// A probability is negative, NaN or infinite.
    #[error("an answer has a probability that is not a finite number ≥ 0 ({0})")]
    NotProbability(f64),
}

/// How the answers of a clip are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Aggregate {
    /// The mean distribution.
    Mean,
    /// The mean weighted by each answer's confidence (weighted Best-of-N).
    Confidence,
    /// The single most confident answer (Best-of-N with the model as its own verifier).
    BestOfN,
    /// The share of answers whose top label is each label (majority voting), unsmoothed.
    Majority,
}

impl Aggregate {
    /// Every strategy, in the order the CLI lists them.
    pub const ALL: [Aggregate; 4] = [
        Aggregate::Mean,
        Aggregate::Confidence,
        Aggregate::BestOfN,
        Aggregate::Majority,
    ];

    /// Name on the command line, in file names and cache keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Mean => "mean",
            Aggregate::Confidence => "confidence",
            Aggregate::BestOfN => "best-of-n",
            Aggregate::Majority => "majority",
        }
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Aggregate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Aggregate::ALL
            .into_iter()
            .find(|a| a.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown aggregation `{s}`; expected mean, confidence, best-of-n or majority"
                )
            })
    }
}

/// The confidence of a distribution: its top probability `max_k p_k`.
pub fn confidence(p: &[f64]) -> f64 {
    p.iter().copied().fold(0.0, f64::max)
}

/// Index of the first largest value.
fn top(p: &[f64]) -> usize {
    (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b })
}

/// Combines the readable answers `members` (distributions over the same labels, each
/// summing to 1) with `how`. The result sums to 1.
///
/// * `mean`: `p_k = (1/M) Σ_m p_{m,k}`;
/// * `confidence`: `w_m = max_k p_{m,k}`, `p_k = Σ_m w_m p_{m,k} / Σ_m w_m`;
/// * `best-of-n`: `p = p_{m*}`, `m* = argmax_m max_k p_{m,k}` (the first on ties);
/// * `majority`: each answer votes for its top label (a tie for its top splits the vote
///   equally), `p_k = votes_k / M`; unsmoothed, so labels no answer ranks first get 0.
pub fn aggregate(how: Aggregate, members: &[Vec<f64>]) -> Result<Vec<f64>, StrategyError> {
    let first = members.first().ok_or(StrategyError::NoMembers)?;
    let k = first.len();
    for m in members {
        if m.len() != k {
            return Err(StrategyError::Length(k, m.len()));
        }
        if let Some(&bad) = m.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(StrategyError::NotProbability(bad));
        }
    }
    let weighted = |weight: &dyn Fn(&[f64]) -> f64| {
        let mut out = vec![0.0; k];
        let mut total = 0.0;
        for m in members {
            let w = weight(m);
            total += w;
            for (o, v) in out.iter_mut().zip(m) {
                *o += w * v;
            }
        }
        out.iter().map(|v| v / total).collect::<Vec<f64>>()
    };
    Ok(match how {
        Aggregate::Mean => weighted(&|_| 1.0),
        Aggregate::Confidence => {
            if members.iter().all(|m| confidence(m) == 0.0) {
                weighted(&|_| 1.0)
            } else {
                weighted(&confidence)
            }
        }
        Aggregate::BestOfN => {
            let best = (0..members.len()).fold(0, |b, i| {
                if confidence(&members[i]) > confidence(&members[b]) {
                    i
                } else {
                    b
                }
            });
            members[best].clone()
        }
        Aggregate::Majority => {
            let mut votes = vec![0.0; k];
            for m in members {
                let best = m[top(m)];
                let tied: Vec<usize> = (0..k).filter(|&i| m[i] == best).collect();
                for i in &tied {
                    votes[*i] += 1.0 / tied.len() as f64;
                }
            }
            votes.iter().map(|v| v / members.len() as f64).collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
        }
    }

    /// Three answers over (a, b, c).
    fn members() -> Vec<Vec<f64>> {
        vec![
            vec![0.5, 0.3, 0.2],
            vec![0.1, 0.8, 0.1],
            vec![0.6, 0.2, 0.2],
        ]
    }

    #[test]
    fn mean_is_the_average() {
        // (0.5+0.1+0.6)/3, (0.3+0.8+0.2)/3, (0.2+0.1+0.2)/3.
        close(
            &aggregate(Aggregate::Mean, &members()).unwrap(),
            &[0.4, 1.3 / 3.0, 0.5 / 3.0],
        );
    }

    #[test]
    fn confidence_weights_by_top_probability() {
        // Weights 0.5, 0.8, 0.6 (sum 1.9).
        // a: 0.5·0.5 + 0.8·0.1 + 0.6·0.6 = 0.69; b: 0.15 + 0.64 + 0.12 = 0.91;
        // c: 0.10 + 0.08 + 0.12 = 0.30.
        close(
            &aggregate(Aggregate::Confidence, &members()).unwrap(),
            &[0.69 / 1.9, 0.91 / 1.9, 0.30 / 1.9],
        );
        assert_eq!(confidence(&[0.2, 0.7, 0.1]), 0.7);
    }

    #[test]
    fn best_of_n_is_the_most_confident_answer() {
        close(
            &aggregate(Aggregate::BestOfN, &members()).unwrap(),
            &[0.1, 0.8, 0.1],
        );
        // Ties: the first.
        let tied = vec![vec![0.6, 0.4], vec![0.4, 0.6]];
        close(&aggregate(Aggregate::BestOfN, &tied).unwrap(), &[0.6, 0.4]);
    }

    #[test]
    fn majority_counts_top_labels() {
        // Tops: a, b, a → (2/3, 1/3, 0).
        close(
            &aggregate(Aggregate::Majority, &members()).unwrap(),
            &[2.0 / 3.0, 1.0 / 3.0, 0.0],
        );
        // A tie for the top splits the vote: (0.5, 0.5, 0) and (1, 0, 0) → (0.75, 0.25, 0).
        let tied = vec![vec![0.4, 0.4, 0.2], vec![0.9, 0.05, 0.05]];
        close(
            &aggregate(Aggregate::Majority, &tied).unwrap(),
            &[0.75, 0.25, 0.0],
        );
    }

    #[test]
    fn one_member_is_returned_unchanged_and_bad_input_is_an_error() {
        let one = vec![vec![0.25, 0.75]];
        for how in [Aggregate::Mean, Aggregate::Confidence, Aggregate::BestOfN] {
            close(&aggregate(how, &one).unwrap(), &one[0]);
        }
        assert_eq!(
            aggregate(Aggregate::Mean, &[]),
            Err(StrategyError::NoMembers)
        );
        assert!(matches!(
            aggregate(Aggregate::Mean, &[vec![0.5, 0.5], vec![1.0]]),
            Err(StrategyError::Length(2, 1))
        ));
        assert!(aggregate(Aggregate::Mean, &[vec![f64::NAN, 1.0]]).is_err());
        assert_eq!("best-of-n".parse::<Aggregate>(), Ok(Aggregate::BestOfN));
        assert!("vote".parse::<Aggregate>().is_err());
    }
}
