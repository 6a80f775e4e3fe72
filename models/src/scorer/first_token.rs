//! `first-token` scorer: one forward pass, read the label tokens' logits at the answer
//! position, softmax with temperature.
//!
//! A label with several first tokens (forms) gets the log-sum-exp of their logits, i.e.
//! the log of the summed probability its forms have under the full-vocabulary softmax
//! (up to the shared normaliser, which cancels in the label softmax). With one form
//! this is just that token's logit, and the result equals a plain softmax over the
//! label-token logits, as the paper's first-token readout.

use super::{LabelScores, Method, ScoreError, Verbaliser, label_logit};

/// The `first-token` scorer.
#[derive(Debug, Clone)]
pub struct FirstTokenScorer {
    verbaliser: Verbaliser,
    temperature: f32,
}

impl FirstTokenScorer {
    /// A scorer over `verbaliser`'s labels; `temperature` must be finite and > 0.
    pub fn new(verbaliser: Verbaliser, temperature: f32) -> Result<Self, ScoreError> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(ScoreError::Temperature(temperature));
        }
        Ok(Self {
            verbaliser,
            temperature,
        })
    }

    /// The verbaliser in use.
    pub fn verbaliser(&self) -> &Verbaliser {
        &self.verbaliser
    }

    /// Scores one utterance from the vocabulary logits at its answer position.
    pub fn score(&self, vocab_logits: &[f32]) -> Result<LabelScores, ScoreError> {
        let label_logits = self
            .verbaliser
            .label_tokens()
            .iter()
            .map(|l| label_logit(l, vocab_logits))
            .collect::<Result<Vec<f64>, ScoreError>>()?;
        let probs = softmax(&label_logits, f64::from(self.temperature));
        Ok(LabelScores::new(
            self.verbaliser.labels().map(str::to_string).collect(),
            Method::FirstToken,
            label_logits.iter().map(|&z| z as f32).collect(),
            probs,
        ))
    }
}

/// `softmax(z / t)` in f64, returned as f32.
fn softmax(z: &[f64], t: f64) -> Vec<f32> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| ((v - max) / t).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| (v / sum) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorer::Form;
    use crate::scorer::tests::FakeTokenizer;

    fn scorer(t: f32) -> FirstTokenScorer {
        let tok = FakeTokenizer::new(&[
            (" happy", &[1]),
            (" sad", &[2]),
            (" Happy", &[3]),
            (" Sad", &[4, 5]),
        ]);
        let v = Verbaliser::new(&["happy", "sad"], &[Form::Space, Form::SpaceCapital], &tok)
            .expect("verbaliser");
        FirstTokenScorer::new(v, t).expect("scorer")
    }

    #[test]
    fn label_logit_is_log_sum_exp_of_forms() {
        let logits = [0.0, 1.0, 2.0, 1.0, 0.5, 9.0];
        let s = scorer(1.0).score(&logits).expect("score");
        let happy = (1f64.exp() + 1f64.exp()).ln() as f32;
        let sad = (2f64.exp() + 0.5f64.exp()).ln() as f32;
        assert!((s.logits[0] - happy).abs() < 1e-6);
        assert!((s.logits[1] - sad).abs() < 1e-6);
        let p_happy = 1.0 / (1.0 + (sad - happy).exp());
        assert!((s.probs[0] - p_happy).abs() < 1e-6);
        assert!((s.probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let logits = [0.0, 1.0, 2.0, 1.0, 0.5, 0.0];
        let p1 = scorer(1.0).score(&logits).expect("t=1").probs[1];
        let sharp = scorer(0.5).score(&logits).expect("t=0.5").probs[1];
        let flat = scorer(10.0).score(&logits).expect("t=10").probs[1];
        assert!(sharp > p1 && p1 > flat && flat > 0.5);
    }

    #[test]
    fn bad_temperature_and_short_logits_are_errors() {
        let v = scorer(1.0).verbaliser().clone();
        assert!(FirstTokenScorer::new(v.clone(), 0.0).is_err());
        assert!(FirstTokenScorer::new(v, f32::NAN).is_err());
        assert!(matches!(
            scorer(1.0).score(&[0.0; 3]),
            Err(ScoreError::TokenOutOfRange { token: 3, vocab: 3 })
        ));
    }
}
