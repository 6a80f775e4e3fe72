//! Explicit mapping of reference label names onto a model's label names.
//!
//! Datasets name emotions differently (`anger`, `happiness`, `fearful`) from the
//! labels a model is asked about (`angry`, `happy`, `fear`). A silent mismatch
//! would drop those clips from the metrics, or worse, count them as errors, so
//! every rename is listed ([`BUILTIN_ALIASES`] plus `--label-map a=b,…`) and every
//! label that still matches no model label is reported by the caller.

use std::collections::BTreeMap;

/// Common dataset spellings and the emomon label each means.
pub const BUILTIN_ALIASES: [(&str, &str); 12] = [
    ("anger", "angry"),
    ("happiness", "happy"),
    ("joy", "happy"),
    ("sadness", "sad"),
    ("fearful", "fear"),
    ("afraid", "fear"),
    ("disgusted", "disgust"),
    ("surprised", "surprise"),
    ("neu", "neutral"),
    ("ang", "angry"),
    ("hap", "happy"),
    ("bored", "boredom"),
];

/// Reference label → model label renames.
#[derive(Debug, Clone, Default)]
pub struct LabelMap {
    renames: BTreeMap<String, String>,
}

impl LabelMap {
    /// The built-in aliases, overridden and extended by `user` pairs.
    pub fn new(user: &[(String, String)]) -> Self {
        let mut renames: BTreeMap<String, String> = BUILTIN_ALIASES
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        for (from, to) in user {
            renames.insert(from.trim().to_lowercase(), to.trim().to_string());
        }
        Self { renames }
    }

    /// Parses `from=to,from=to` (the `--label-map` value).
    pub fn parse_pairs(spec: &str) -> Result<Vec<(String, String)>, String> {
        spec.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| match p.split_once('=') {
                Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                    Ok((a.trim().to_string(), b.trim().to_string()))
                }
                _ => Err(format!("--label-map: {p:?} is not `from=to`")),
            })
            .collect()
    }

    /// The model label `reference` stands for: a label the model has is kept
    /// as is, otherwise the rename of its trimmed, lower-case form, otherwise
    /// that lower-case form (which the caller then reports as unmapped).
    pub fn map(&self, reference: &str, model_labels: &[String]) -> String {
        let trimmed = reference.trim();
        if model_labels.iter().any(|l| l == trimmed) {
            return trimmed.to_string();
        }
        let lower = trimmed.to_lowercase();
        match self.renames.get(&lower) {
            Some(to) => to.clone(),
            None => lower,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn builtin_user_and_identity() {
        let model = labels(&["angry", "happy", "calm"]);
        let user = LabelMap::parse_pairs("serene=calm, Joy=sad").unwrap();
        let map = LabelMap::new(&user);
        assert_eq!(map.map("Anger", &model), "angry");
        assert_eq!(map.map("happiness", &model), "happy");
        assert_eq!(map.map("serene", &model), "calm");
        assert_eq!(
            map.map("joy", &model),
            "sad",
            "user pairs override built-ins"
        );
        assert_eq!(map.map(" calm ", &model), "calm");
        assert_eq!(map.map("Boredom", &model), "boredom");
        assert!(LabelMap::parse_pairs("a=b,c").is_err());
        assert!(LabelMap::parse_pairs("=b").is_err());
    }
}
