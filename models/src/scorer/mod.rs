//! Emotion scorers: turn label-token logits into a distribution over labels
//! (DESIGN.md, "Scoring an utterance"): the verbaliser, `first-token`,
//! `token-average` and the `text` parser, and seeded sampling for test-time scaling.

mod first_token;
mod sampling;
mod text;
mod token_average;
mod verbaliser;

pub use first_token::FirstTokenScorer;
pub use sampling::{SampleRng, sample_index};
pub use text::{Unparseable, parse_distribution};
pub use token_average::TokenAverageScorer;
pub use verbaliser::{Form, LabelTokens, Verbaliser};

use crate::tokenizer::TokenizerError;

/// Errors of label set construction and scoring.
#[derive(Debug, thiserror::Error)]
pub enum ReadoutError {
    /// The label set is unusable.
    #[error("invalid label set: {0}")]
    Labels(String),
    /// Two labels share a first token, so its logit cannot be attributed.
    #[error(
        "labels `{a}` and `{b}` share the first token {token} ({text:?}); choose other labels or forms"
    )]
    Collision {
        /// First label.
        a: String,
        /// Second label.
        b: String,
        /// Shared token id.
        token: u32,
        /// Its text.
        text: String,
    },
    /// Temperature must be finite and positive.
    #[error("temperature must be finite and > 0, got {0}")]
    Temperature(f32),
    /// A label token is outside the logits given (wrong tokenizer for the model?).
    #[error(
        "label token {token} is outside the model's {vocab} logits (tokenizer and model disagree?)"
    )]
    TokenOutOfRange {
        /// Token id.
        token: u32,
        /// Number of logits.
        vocab: usize,
    },
    /// A label logit is NaN or infinite.
    #[error("logit of label `{label}` is not finite ({value})")]
    NonFinite {
        /// Label.
        label: String,
        /// Value.
        value: f32,
    },
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// Which scorer produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Softmax over label-token logits at the answer position.
    FirstToken,
    /// Label probabilities averaged over generated positions, normalised.
    TokenAverage,
    /// Percentages written by the model, parsed.
    Text,
}

impl Method {
    /// Every method, in the order the CLI lists them.
    pub const ALL: [Method; 3] = [Method::FirstToken, Method::TokenAverage, Method::Text];

    /// The name used on the command line and in logs (`first-token`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::FirstToken => "first-token",
            Method::TokenAverage => "token-average",
            Method::Text => "text",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown scoring method `{s}`; expected first-token, token-average or text")
            })
    }
}

/// A label's logit at one position: log-sum-exp of its forms' first-token logits.
fn label_logit(label: &LabelTokens, vocab_logits: &[f32]) -> Result<f64, ReadoutError> {
    let mut values = Vec::with_capacity(label.first_tokens.len());
    for &t in &label.first_tokens {
        let v = vocab_logits
            .get(t as usize)
            .copied()
            .ok_or(ReadoutError::TokenOutOfRange {
                token: t,
                vocab: vocab_logits.len(),
            })?;
        if !v.is_finite() {
            return Err(ReadoutError::NonFinite {
                label: label.label.clone(),
                value: v,
            });
        }
        values.push(f64::from(v));
    }
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Ok(max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln())
}

/// A distribution over labels for one utterance, with the raw numbers behind it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelScores {
    /// Labels, in the configured order.
    pub labels: Vec<String>,
    /// Method that produced the scores.
    pub method: Method,
    /// Raw label logits (per label; see the method for how forms are combined and, for
    /// `token-average`, averaged over positions). For `text`: the numbers as written.
    pub logits: Vec<f32>,
    /// Probabilities, same order, summing to 1.
    pub probs: Vec<f32>,
    /// Shannon entropy of `probs` in nats.
    pub entropy: f32,
}

impl LabelScores {
    pub(crate) fn new(
        labels: Vec<String>,
        method: Method,
        logits: Vec<f32>,
        probs: Vec<f32>,
    ) -> Self {
        let entropy = -probs
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| f64::from(p) * f64::from(p).ln())
            .sum::<f64>();
        Self {
            labels,
            method,
            logits,
            probs,
            entropy: entropy as f32,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::tokenizer::TokenText;

    /// A tokenizer with a fixed text → ids table; ids decode to `t{id}`, id 0 to a space.
    pub(crate) struct FakeTokenizer(HashMap<String, Vec<u32>>);

    impl FakeTokenizer {
        pub(crate) fn new(table: &[(&str, &[u32])]) -> Self {
            Self(
                table
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_vec()))
                    .collect(),
            )
        }
    }

    impl TokenText for FakeTokenizer {
        fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
            self.0
                .get(text)
                .cloned()
                .ok_or_else(|| TokenizerError::Encode {
                    input: text.into(),
                    message: "not in the fake table".into(),
                })
        }
        fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
            Ok(ids
                .iter()
                .map(|&i| {
                    if i == 0 {
                        " ".to_string()
                    } else {
                        format!("t{i}")
                    }
                })
                .collect())
        }
    }

    #[test]
    fn colliding_first_tokens_are_rejected() {
        let tok = FakeTokenizer::new(&[(" sad", &[7, 8]), (" surprise", &[7, 9])]);
        let err =
            Verbaliser::new(&["sad", "surprise"], &[Form::Space], &tok).expect_err("collision");
        let msg = err.to_string();
        assert!(
            msg.contains("`sad`") && msg.contains("`surprise`") && msg.contains("token 7"),
            "{msg}"
        );
    }

    #[test]
    fn whitespace_first_tokens_are_skipped() {
        let tok = FakeTokenizer::new(&[(" neutral", &[3]), (" Neutral", &[0, 4])]);
        let v =
            Verbaliser::new(&["neutral"], &[Form::Space, Form::SpaceCapital], &tok).expect("ok");
        assert_eq!(v.label_tokens()[0].first_tokens, vec![3]);
        let only_space = FakeTokenizer::new(&[(" Neutral", &[0, 4])]);
        assert!(Verbaliser::new(&["neutral"], &[Form::SpaceCapital], &only_space).is_err());
    }

    #[test]
    fn duplicate_and_empty_labels_are_rejected() {
        let tok = FakeTokenizer::new(&[(" a", &[1])]);
        assert!(Verbaliser::new(&["a", "a"], &[Form::Space], &tok).is_err());
        assert!(Verbaliser::new(&[" "], &[Form::Space], &tok).is_err());
        assert!(Verbaliser::new::<&str>(&[], &[Form::Space], &tok).is_err());
    }

    #[test]
    fn forms_render() {
        assert_eq!(Form::SpaceCapital.apply("überrascht"), " Überrascht");
        assert_eq!(Form::Capital.apply("happy"), "Happy");
        assert_eq!(Form::Plain.apply("happy"), "happy");
    }

    #[test]
    fn entropy_of_uniform_is_ln_n() {
        let s = LabelScores::new(
            vec!["a".into(), "b".into()],
            Method::FirstToken,
            vec![0.0; 2],
            vec![0.5; 2],
        );
        assert!((s.entropy - 2f32.ln()).abs() < 1e-6);
    }
}
