//! Verbaliser: which vocabulary tokens stand for each emotion label.
//!
//! A label is written in one or more surface forms (`" happy"`, `" Happy"`, `"happy"`…);
//! whether the model's answer starts with a space or a capital depends on the model
//! and the prompt, so several forms are usually summed. For the first-token method only
//! the first token of each form matters.
//!
//! Two rules keep the distribution meaningful:
//! * a form whose first token is only whitespace (a BPE splitting `" Neutral"` into
//!   `"Ġ"`, `"Neutral"`) says nothing about the label and is skipped;
//! * if two labels share a first token, the logit of that token cannot be attributed to
//!   either, so the label set is rejected with both labels and the token named.

use std::collections::HashMap;

use super::ReadoutError;
use crate::tokenizer::TokenText;

/// A surface form of a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The label as given: `happy`.
    Plain,
    /// With a leading space: ` happy` (GPT-2/Whisper-style BPEs mark word starts).
    Space,
    /// First letter upper case: `Happy`.
    Capital,
    /// Leading space and capital: ` Happy`.
    SpaceCapital,
}

impl Form {
    /// The text of `label` in this form.
    pub fn apply(self, label: &str) -> String {
        let cap = || {
            let mut c = label.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        };
        match self {
            Form::Plain => label.to_string(),
            Form::Space => format!(" {label}"),
            Form::Capital => cap(),
            Form::SpaceCapital => format!(" {}", cap()),
        }
    }
}

/// One label's token view.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelTokens {
    /// The label name.
    pub label: String,
    /// Distinct informative first tokens of its forms, in form order.
    pub first_tokens: Vec<u32>,
    /// Full token sequence of each usable form (for whole-sequence scoring).
    pub sequences: Vec<Vec<u32>>,
}

/// Labels mapped to tokens, checked for collisions.
#[derive(Debug, Clone, PartialEq)]
pub struct Verbaliser {
    labels: Vec<LabelTokens>,
}

impl Verbaliser {
    /// Builds the verbaliser of `labels` in `forms` with `tokenizer`.
    pub fn new<S: AsRef<str>>(
        labels: &[S],
        forms: &[Form],
        tokenizer: &dyn TokenText,
    ) -> Result<Self, ReadoutError> {
        if labels.is_empty() {
            return Err(ReadoutError::Labels("the label set is empty".into()));
        }
        if forms.is_empty() {
            return Err(ReadoutError::Labels("no verbaliser forms given".into()));
        }
        let mut out: Vec<LabelTokens> = Vec::with_capacity(labels.len());
        let mut owner: HashMap<u32, usize> = HashMap::new();
        for (li, label) in labels.iter().enumerate() {
            let label = label.as_ref().trim();
            if label.is_empty() {
                return Err(ReadoutError::Labels(format!("label {li} is empty")));
            }
            if out.iter().any(|l| l.label == label) {
                return Err(ReadoutError::Labels(format!(
                    "label `{label}` appears twice"
                )));
            }
            let mut first_tokens = Vec::new();
            let mut sequences = Vec::new();
            for &form in forms {
                let ids = tokenizer.encode(&form.apply(label))?;
                let Some(&first) = ids.first() else { continue };
                if tokenizer.decode(&[first])?.trim().is_empty() {
                    tracing::debug!(
                        label,
                        ?form,
                        first,
                        "form skipped: first token is whitespace"
                    );
                    continue;
                }
                if !first_tokens.contains(&first) {
                    first_tokens.push(first);
                }
                sequences.push(ids);
            }
            if first_tokens.is_empty() {
                return Err(ReadoutError::Labels(format!(
                    "label `{label}` has no form whose first token is more than whitespace"
                )));
            }
            for &t in &first_tokens {
                if let Some(&other) = owner.get(&t) {
                    let text = tokenizer.decode(&[t])?;
                    return Err(ReadoutError::Collision {
                        a: out[other].label.clone(),
                        b: label.to_string(),
                        token: t,
                        text,
                    });
                }
                owner.insert(t, li);
            }
            out.push(LabelTokens {
                label: label.to_string(),
                first_tokens,
                sequences,
            });
        }
        Ok(Self { labels: out })
    }

    /// The labels, in the order given.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(|l| l.label.as_str())
    }

    /// Token view of every label.
    pub fn label_tokens(&self) -> &[LabelTokens] {
        &self.labels
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Never true for a constructed verbaliser; here for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}
