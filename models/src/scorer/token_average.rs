//! `token-average` scorer: the paper's token-level conceptualization (arXiv 2505.18484).
//!
//! The model generates its answer greedily. At every generated position `t` (each step
//! that produced a token, including the one that produced EOS) we read each label's
//! score, average over positions and normalise:
//!
//! * score at a position: the label's probability under the **full-vocabulary softmax**,
//!   `p_e,t = Σ_{k ∈ first tokens of e} softmax(logits_t)[k]`. The paper's
//!   `φ_e = z_e / Σ_n z_n` needs positive scores; raw logits can be negative, so the
//!   positive transform is the softmax (not exp of logits alone, whose scale would make
//!   positions with large logits dominate);
//! * `z_e = mean_t p_e,t`, `φ_e = z_e / Σ_n z_n`.
//!
//! The reported raw `logits` are the label logits (log-sum-exp over forms) averaged over
//! the same positions, for later re-analysis.

use super::{LabelScores, Method, ReadoutError, Verbaliser, label_logit};

/// The `token-average` scorer.
#[derive(Debug, Clone)]
pub struct TokenAverageScorer {
    verbaliser: Verbaliser,
}

impl TokenAverageScorer {
    /// A scorer over `verbaliser`'s labels.
    pub fn new(verbaliser: Verbaliser) -> Self {
        Self { verbaliser }
    }

    /// Scores one utterance from the vocabulary logits of each generated position.
    pub fn score(&self, step_logits: &[Vec<f32>]) -> Result<LabelScores, ReadoutError> {
        if step_logits.is_empty() {
            return Err(ReadoutError::Labels(
                "token-average needs at least one generated position".into(),
            ));
        }
        let n = self.verbaliser.len();
        let mut prob_sum = vec![0.0f64; n];
        let mut logit_sum = vec![0.0f64; n];
        for logits in step_logits {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if !max.is_finite() {
                return Err(ReadoutError::Labels(
                    "generated-position logits are not finite".into(),
                ));
            }
            let max = f64::from(max);
            let log_norm = max
                + logits
                    .iter()
                    .map(|&v| (f64::from(v) - max).exp())
                    .sum::<f64>()
                    .ln();
            for (e, l) in self.verbaliser.label_tokens().iter().enumerate() {
                let z = label_logit(l, logits)?;
                logit_sum[e] += z;
                prob_sum[e] += (z - log_norm).exp();
            }
        }
        let steps = step_logits.len() as f64;
        let total: f64 = prob_sum.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return Err(ReadoutError::Labels(
                "all label probabilities underflowed to zero at every position".into(),
            ));
        }
        Ok(LabelScores::new(
            self.verbaliser.labels().map(str::to_string).collect(),
            Method::TokenAverage,
            logit_sum.iter().map(|&z| (z / steps) as f32).collect(),
            prob_sum.iter().map(|&p| (p / total) as f32).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorer::Form;
    use crate::scorer::tests::FakeTokenizer;

    #[test]
    fn averages_full_softmax_probabilities_then_normalises() {
        let tok = FakeTokenizer::new(&[(" a", &[1]), (" b", &[2])]);
        let v = Verbaliser::new(&["a", "b"], &[Form::Space], &tok).expect("verbaliser");
        let steps = vec![vec![0.0, 2.0, 0.0], vec![1.0, 0.0, 1.0]];
        let s = TokenAverageScorer::new(v).score(&steps).expect("score");
        let sm = |l: &[f32], k: usize| {
            let z: f64 = l.iter().map(|&x| f64::from(x).exp()).sum();
            f64::from(l[k]).exp() / z
        };
        let a = (sm(&steps[0], 1) + sm(&steps[1], 1)) / 2.0;
        let b = (sm(&steps[0], 2) + sm(&steps[1], 2)) / 2.0;
        assert!((f64::from(s.probs[0]) - a / (a + b)).abs() < 1e-6);
        assert!((s.logits[0] - 1.0).abs() < 1e-6 && (s.logits[1] - 0.5).abs() < 1e-6);
        assert!(TokenAverageScorer::new(s_verbaliser()).score(&[]).is_err());
    }

    fn s_verbaliser() -> Verbaliser {
        let tok = FakeTokenizer::new(&[(" a", &[1])]);
        Verbaliser::new(&["a"], &[Form::Space], &tok).expect("verbaliser")
    }
}
