//! Reading a chat completion: each answer's text and, per generated position, the
//! log-probabilities of the label tokens.
//!
//! vLLM with `logprob_token_ids` returns every asked token at every position, so the
//! label log-probabilities are exact. A server without that extension returns only its
//! `top_logprobs` best tokens; a label outside that list is **below its floor** (the
//! list's smallest log-probability). It is then scored at the floor, an upper bound,
//! and reported by name ([`LabelRow::below_floor`]), never silently given zero.

use std::collections::HashMap;

use serde::Deserialize;

/// One generated answer (`choices[i]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The answer's text (`message.content`).
    pub text: String,
    /// Per generated position, the (token id, log-probability) pairs returned.
    pub positions: Vec<Vec<(u32, f32)>>,
}

/// The label tokens' log-probabilities at one position.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// Per readout token, its log-probability (or the floor, see `below_floor`).
    pub values: Vec<f32>,
    /// Readout tokens the server did not return: scored at the floor.
    pub below_floor: Vec<u32>,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    logprobs: Option<Logprobs>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Logprobs {
    #[serde(default)]
    content: Option<Vec<Content>>,
}

#[derive(Deserialize)]
struct Content {
    token: String,
    logprob: f32,
    #[serde(default)]
    top_logprobs: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    token: String,
    logprob: f32,
}

/// Parses a chat completion body. `known` maps token texts to ids for servers that
/// do not name tokens `token_id:N` (only the label tokens need to be known: others
/// are dropped).
pub fn parse_completion(body: &[u8], known: &HashMap<String, u32>) -> Result<Vec<Answer>, String> {
    let c: Completion = serde_json::from_slice(body).map_err(|e| {
        let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        format!("the server's answer is not a chat completion ({e}): {head:?}")
    })?;
    if c.choices.is_empty() {
        return Err("the server's answer has no choices".into());
    }
    let id = |t: &str| {
        t.strip_prefix("token_id:")
            .and_then(|n| n.parse().ok())
            .or_else(|| known.get(t).copied())
    };
    Ok(c.choices
        .into_iter()
        .map(|ch| Answer {
            text: ch.message.and_then(|m| m.content).unwrap_or_default(),
            positions: ch
                .logprobs
                .and_then(|l| l.content)
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    let mut row: Vec<(u32, f32)> = p
                        .top_logprobs
                        .iter()
                        .filter_map(|e| Some((id(&e.token)?, e.logprob)))
                        .collect();
                    if let Some(chosen) = id(&p.token)
                        && !row.iter().any(|(t, _)| *t == chosen)
                    {
                        row.push((chosen, p.logprob));
                    }
                    row
                })
                .collect(),
        })
        .collect())
}

/// The log-probabilities of `readout` tokens at one position; tokens not returned get
/// the position's floor and are listed in [`LabelRow::below_floor`]. A position with
/// no finite log-probability at all is an error.
pub fn label_row(position: &[(u32, f32)], readout: &[u32]) -> Result<LabelRow, String> {
    let floor = position
        .iter()
        .map(|&(_, lp)| lp)
        .filter(|lp| lp.is_finite())
        .fold(f32::INFINITY, f32::min);
    if !floor.is_finite() {
        return Err(
            "the server returned no log-probabilities for the answer (does it support \
             `logprobs`?)"
                .into(),
        );
    }
    let mut below_floor = Vec::new();
    let values = readout
        .iter()
        .map(|t| match position.iter().find(|(id, _)| id == t) {
            Some(&(_, lp)) if lp.is_finite() => lp,
            _ => {
                below_floor.push(*t);
                floor
            }
        })
        .collect();
    Ok(LabelRow {
        values,
        below_floor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"sad"},
      "logprobs":{"content":[{"token":"token_id:7","logprob":-0.5,
        "top_logprobs":[{"token":"token_id:7","logprob":-0.5},{"token":"token_id:3","logprob":-1.5},
                        {"token":"Happy","logprob":-4.0}]}]},"finish_reason":"length"}]}"#;

    #[test]
    fn reads_ids_text_and_named_tokens() {
        let known = HashMap::from([("Happy".to_string(), 11u32)]);
        let a = parse_completion(BODY.as_bytes(), &known).expect("parses");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].text, "sad");
        assert_eq!(a[0].positions, vec![vec![(7, -0.5), (3, -1.5), (11, -4.0)]]);
    }

    #[test]
    fn missing_labels_sit_at_the_floor_and_are_named() {
        let row = label_row(&[(7, -0.5), (3, -1.5)], &[3, 7, 42]).expect("row");
        assert_eq!(row.values, vec![-1.5, -0.5, -1.5]);
        assert_eq!(row.below_floor, vec![42]);
        assert!(label_row(&[], &[3]).is_err());
    }

    #[test]
    fn malformed_answers_are_errors_with_the_body() {
        let known = HashMap::new();
        let e = parse_completion(b"{\"choices\": [", &known).expect_err("truncated");
        assert!(e.contains("not a chat completion"), "{e}");
        assert!(parse_completion(b"{\"choices\": []}", &known).is_err());
        assert!(parse_completion(b"<html>bad gateway</html>", &known).is_err());
    }
}
