//! `text` scorer: the paper's text-level articulation. The model is asked to answer with
//! percentages ("happy 60%, neutral 30%, sad 10%"); the generated text is parsed into a
//! distribution. Anything that cannot be read unambiguously is reported, never guessed.
//!
//! Accepted items, separated by `,` `;` newlines or the word `and`:
//! `label 60%`, `label: 60`, `label - 0.6`, `60% label`. Labels match case-insensitively.
//! Labels not mentioned get 0. The numbers are normalised to sum to 1 (so both
//! percentages and fractions work); their raw values are kept in `logits`.

use super::{LabelScores, Method};

/// Why a generated answer could not be turned into a distribution.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unparseable {
    /// No `label number` pair was found.
    #[error("no label with a number in {0:?}")]
    NoPairs(String),
    /// A number is attached to a word that is not a label.
    #[error("{word:?} (with {value}) is not one of the labels")]
    UnknownLabel {
        /// The word.
        word: String,
        /// Its number.
        value: f32,
    },
    /// A label is given twice.
    #[error("label {0:?} appears twice")]
    Duplicate(String),
    /// A value is negative or not finite, or all values are zero.
    #[error("invalid values: {0}")]
    Values(String),
}

/// Parses `text` over `labels`.
pub fn parse_distribution(text: &str, labels: &[String]) -> Result<LabelScores, Unparseable> {
    let lower: Vec<String> = labels.iter().map(|l| l.to_lowercase()).collect();
    let mut raw: Vec<Option<f32>> = vec![None; labels.len()];
    let normalised = text.replace(" and ", ",").replace(['\n', ';'], ",");
    let mut found = false;
    for item in normalised.split(',') {
        let words: Vec<&str> = item
            .split(|c: char| c.is_whitespace() || c == ':' || c == '=')
            .map(|w| w.trim_matches(|c: char| c == '-' || c == '.' || c == '*' || c == '"'))
            .filter(|w| !w.is_empty())
            .collect();
        let number = words.iter().position(|w| parse_number(w).is_some());
        let word = words.iter().position(|w| parse_number(w).is_none());
        let (Some(ni), Some(wi)) = (number, word) else {
            continue;
        };
        let value = parse_number(words[ni]).unwrap_or(f32::NAN);
        let word = words[wi].to_lowercase();
        let Some(li) = lower.iter().position(|l| *l == word) else {
            return Err(Unparseable::UnknownLabel { word, value });
        };
        if raw[li].is_some() {
            return Err(Unparseable::Duplicate(labels[li].clone()));
        }
        if !(value.is_finite() && value >= 0.0) {
            return Err(Unparseable::Values(format!("{} = {value}", labels[li])));
        }
        raw[li] = Some(value);
        found = true;
    }
    if !found {
        return Err(Unparseable::NoPairs(text.to_string()));
    }
    let values: Vec<f32> = raw.iter().map(|v| v.unwrap_or(0.0)).collect();
    let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
    if total <= 0.0 {
        return Err(Unparseable::Values("all values are zero".into()));
    }
    let probs = values
        .iter()
        .map(|&v| (f64::from(v) / total) as f32)
        .collect();
    Ok(LabelScores::new(
        labels.to_vec(),
        Method::Text,
        values,
        probs,
    ))
}

/// `60%`, `60`, `0.6` → the number as written (percent sign dropped).
fn parse_number(word: &str) -> Option<f32> {
    word.trim_end_matches('%').parse::<f32>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["neutral", "happy", "sad"].map(String::from).to_vec()
    }

    #[test]
    fn parses_common_shapes() {
        let s =
            parse_distribution("Happy 60%, neutral: 30% and 10% sad.", &labels()).expect("parse");
        assert_eq!(s.logits, vec![30.0, 60.0, 10.0]);
        assert!((s.probs[1] - 0.6).abs() < 1e-6);
        let s = parse_distribution("happy - 0.5\nsad = 0.5", &labels()).expect("parse");
        assert_eq!(s.probs, vec![0.0, 0.5, 0.5]);
    }

    #[test]
    fn reports_unparseable_output() {
        assert!(matches!(
            parse_distribution("I think the speaker is happy.", &labels()),
            Err(Unparseable::NoPairs(_))
        ));
        assert!(matches!(
            parse_distribution("excited 80%, happy 20%", &labels()),
            Err(Unparseable::UnknownLabel { .. })
        ));
        assert!(matches!(
            parse_distribution("happy 50%, happy 50%", &labels()),
            Err(Unparseable::Duplicate(_))
        ));
        assert!(matches!(
            parse_distribution("happy 0%, sad 0%", &labels()),
            Err(Unparseable::Values(_))
        ));
    }
}
