//! `first-token` scorer: one forward pass, read the label tokens' logits at the answer
//! position, softmax with temperature.
//!
//! A label with several first tokens (forms) gets the log-sum-exp of their logits, i.e.
//! the log of the summed probability its forms have under the full-vocabulary softmax
//! (up to the shared normaliser, which cancels in the label softmax). With one form
//! this is just that token's logit, and the result equals a plain softmax over the
//! label-token logits, as the paper's first-token readout.

use super::{LabelScores, Method, ReadoutError, Verbaliser, label_logit};

/// The `first-token` scorer.
#[derive(Debug, Clone)]
pub struct FirstTokenScorer {
    verbaliser: Verbaliser,
    temperature: f32,
}

impl FirstTokenScorer {
    /// A scorer over `verbaliser`'s labels; `temperature` must be finite and > 0.
    pub fn new(verbaliser: Verbaliser, temperature: f32) -> Result<Self, ReadoutError> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(ReadoutError::Temperature(temperature));
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

    /// Every token whose logit [`score`](Self::score) reads, ascending, without
    /// repeats: a model can compute just these rows of its output projection and hand
    /// them to [`score_rows`](Self::score_rows).
    pub fn readout_tokens(&self) -> Vec<u32> {
        let mut tokens: Vec<u32> = self
            .verbaliser
            .label_tokens()
            .iter()
            .flat_map(|l| l.first_tokens.iter().copied())
            .collect();
        tokens.sort_unstable();
        tokens.dedup();
        tokens
    }

    /// Scores one utterance from the logits of `tokens` only (`logits[i]` is the logit
    /// of `tokens[i]`; e.g. [`readout_tokens`](Self::readout_tokens)); the same result
    /// as [`score`](Self::score) on the full vocabulary row. A token the labels need but
    /// `tokens` lacks is an error.
    pub fn score_rows(&self, tokens: &[u32], logits: &[f32]) -> Result<LabelScores, ReadoutError> {
        if tokens.len() != logits.len() {
            return Err(ReadoutError::Labels(format!(
                "{} readout tokens but {} logits",
                tokens.len(),
                logits.len()
            )));
        }
        // A sparse row as a dense one: missing tokens are NaN, which `score` rejects by
        // label name if a label reads one.
        let len = tokens.iter().max().map_or(0, |&t| t as usize + 1);
        let mut dense = vec![f32::NAN; len];
        for (&t, &z) in tokens.iter().zip(logits) {
            dense[t as usize] = z;
        }
        self.score(&dense)
    }

    /// Scores one utterance from the vocabulary logits at its answer position.
    pub fn score(&self, vocab_logits: &[f32]) -> Result<LabelScores, ReadoutError> {
        let label_logits = self
            .verbaliser
            .label_tokens()
            .iter()
            .map(|l| label_logit(l, vocab_logits))
            .collect::<Result<Vec<f64>, ReadoutError>>()?;
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

    /// Scoring from the readout rows alone gives what the full vocabulary row gives;
    /// a row set missing a label token is an error naming the label.
    #[test]
    fn readout_rows_score_as_the_full_row() {
        let s = scorer(0.7);
        let logits = [0.3, 1.5, -2.0, 0.25, 0.5, 9.0];
        let tokens = s.readout_tokens();
        assert_eq!(tokens, vec![1, 2, 3, 4]);
        let rows: Vec<f32> = tokens.iter().map(|&t| logits[t as usize]).collect();
        assert_eq!(
            s.score_rows(&tokens, &rows).expect("rows"),
            s.score(&logits).expect("full")
        );
        let missing = s.score_rows(&[1, 3], &[1.5, 0.25]);
        assert!(
            matches!(
                missing,
                Err(ReadoutError::TokenOutOfRange { .. } | ReadoutError::NonFinite { .. })
            ),
            "{missing:?}"
        );
        assert!(s.score_rows(&[1, 2], &[0.0]).is_err());
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
            Err(ReadoutError::TokenOutOfRange { token: 3, vocab: 3 })
        ));
    }
}
