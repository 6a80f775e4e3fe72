//! Mistral's `tekken.json` as a Hugging Face `tokenizers` tokenizer.
//!
//! Real Voxtral checkpoints ship `tekken.json` (a tiktoken-style byte-level BPE: token
//! bytes with merge ranks, a split pattern, and a block of special tokens) and no
//! `tokenizer.json`. Rather than a second tokenizer implementation, the file is turned
//! into the equivalent `tokenizer.json` structure in memory and handed to `tokenizers`:
//!
//! * ids: special token `k` has id `k`; vocabulary rank `r` has id
//!   `default_num_special_tokens + r`, as mistral-common numbers them;
//! * pre-tokenizer: tekken's regex split, then byte-level mapping (GPT-2's byte → char
//!   table, which is how `tokenizers` spells raw bytes);
//! * model: BPE whose merges are derived from the ranks the way transformers converts
//!   tiktoken files (every split of a token into two vocabulary pieces, ordered by the
//!   merged token's rank), with `ignore_merges` so a pre-token that is itself in the
//!   vocabulary is one token, as tiktoken does;
//! * special tokens are added tokens, so `[INST]`, `[AUDIO]`… in a rendered prompt
//!   become their ids. (Unlike mistral-common's plain `encode`, which never reads
//!   special tokens out of text, this also holds for such strings inside a question;
//!   prompts are built from the template, so that is the behaviour wanted there.)
//!
//! `models/tests/parity/tekken_fixtures.rs` checks the ids against mistral-common on a cut of
//! its own tekken file.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::tokenizer::TokenizerError;

#[derive(Deserialize)]
struct TekkenFile {
    config: TekkenConfig,
    vocab: Vec<VocabEntry>,
    /// Absent in files of version ≤ v7, which use [`DEPRECATED_SPECIAL_TOKENS`].
    #[serde(default)]
    special_tokens: Option<Vec<SpecialToken>>,
}

#[derive(Deserialize)]
struct TekkenConfig {
    pattern: String,
    default_vocab_size: usize,
    default_num_special_tokens: usize,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct VocabEntry {
    rank: usize,
    token_bytes: String,
}

#[derive(Deserialize)]
struct SpecialToken {
    rank: usize,
    token_str: String,
}

/// mistral-common's special tokens for tekken files that list none (ranks 0–19); the
/// remaining ranks up to `default_num_special_tokens` are `<SPECIAL_k>` fillers.
const DEPRECATED_SPECIAL_TOKENS: [&str; 20] = [
    "<unk>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
    "[TOOL_CALLS]",
    "[IMG]",
    "<pad>",
    "[IMG_BREAK]",
    "[IMG_END]",
    "[PREFIX]",
    "[MIDDLE]",
    "[SUFFIX]",
    "[SYSTEM_PROMPT]",
    "[/SYSTEM_PROMPT]",
    "[TOOL_CONTENT]",
];

/// Reads `path` (a `tekken.json`) into a `tokenizers` tokenizer with mistral-common's
/// ids; any malformed part is an error naming the file.
pub fn load(path: &Path) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let fail = |message: String| TokenizerError::Load {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let file: TekkenFile =
        serde_json::from_str(&text).map_err(|e| fail(format!("not a tekken file: {e}")))?;
    let spec = tokenizer_json(&file).map_err(fail)?;
    spec.to_string()
        .parse::<tokenizers::Tokenizer>()
        .map_err(|e| fail(format!("cannot build the tokenizer: {e}")))
}

/// The `tokenizer.json` equivalent of `file`.
fn tokenizer_json(file: &TekkenFile) -> Result<Value, String> {
    let c = &file.config;
    let n_special = c.default_num_special_tokens;
    let inner = c.default_vocab_size.checked_sub(n_special).ok_or_else(|| {
        format!(
            "default_vocab_size {} is smaller than default_num_special_tokens {n_special}",
            c.default_vocab_size
        )
    })?;
    if file.vocab.len() < inner {
        return Err(format!(
            "the vocabulary has {} entries but default_vocab_size − default_num_special_tokens = {inner}",
            file.vocab.len()
        ));
    }
    let mut tokens: Vec<Vec<u8>> = vec![Vec::new(); inner];
    let mut seen = vec![false; inner];
    for entry in &file.vocab {
        if entry.rank >= inner {
            continue;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&entry.token_bytes)
            .map_err(|e| format!("vocabulary rank {}: bad token_bytes: {e}", entry.rank))?;
        if std::mem::replace(&mut seen[entry.rank], true) {
            return Err(format!("vocabulary rank {} appears twice", entry.rank));
        }
        tokens[entry.rank] = bytes;
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(format!("vocabulary rank {missing} is missing"));
    }

    let byte_chars = byte_to_char();
    let spell =
        |bytes: &[u8]| -> String { bytes.iter().map(|&b| byte_chars[b as usize]).collect() };
    let rank_of: HashMap<&[u8], usize> = tokens
        .iter()
        .enumerate()
        .map(|(r, t)| (t.as_slice(), r))
        .collect();
    let specials = special_tokens(file, n_special)?;
    // The special tokens are model vocabulary too, so that `tokenizers` keeps their ids
    // (added tokens missing from the model would be numbered after it instead).
    let vocab: serde_json::Map<String, Value> = specials
        .iter()
        .cloned()
        .zip(0..)
        .chain(
            tokens
                .iter()
                .enumerate()
                .map(|(r, t)| (spell(t), n_special + r)),
        )
        .map(|(s, id)| (s, json!(id)))
        .collect();
    if vocab.len() != n_special + inner {
        return Err("two vocabulary or special-token entries have the same spelling".into());
    }
    let merges: Vec<Value> = derive_merges(&tokens, &rank_of)
        .into_iter()
        .map(|(l, r)| json!([spell(&tokens[l]), spell(&tokens[r])]))
        .collect();

    let added: Vec<Value> = specials
        .iter()
        .enumerate()
        .map(|(id, content)| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();

    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": c.pattern}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
                  "vocab": vocab, "merges": merges}
    }))
}

/// Special token strings by id: the file's list, or mistral-common's defaults for old
/// files, with `<SPECIAL_k>` for unnamed ranks.
fn special_tokens(file: &TekkenFile, n_special: usize) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = (0..n_special).map(|k| format!("<SPECIAL_{k}>")).collect();
    match &file.special_tokens {
        Some(list) => {
            for t in list {
                let slot = names.get_mut(t.rank).ok_or_else(|| {
                    format!(
                        "special token {} has rank {} ≥ default_num_special_tokens {n_special}",
                        t.token_str, t.rank
                    )
                })?;
                *slot = t.token_str.clone();
            }
        }
        None => {
            let version = file.config.version.as_deref().unwrap_or("?");
            tracing::debug!(
                version,
                "tekken file lists no special tokens; using the defaults"
            );
            for (slot, name) in names.iter_mut().zip(DEPRECATED_SPECIAL_TOKENS) {
                *slot = name.to_string();
            }
        }
    }
    Ok(names)
}

/// BPE merges equivalent to rank-ordered tiktoken merging: each token of two or more
/// bytes contributes every split into two vocabulary pieces, ordered by the token's
/// rank, then by the pieces' ranks.
fn derive_merges(tokens: &[Vec<u8>], rank_of: &HashMap<&[u8], usize>) -> Vec<(usize, usize)> {
    let mut merges = Vec::new();
    for token in tokens.iter().filter(|t| t.len() >= 2) {
        let mut local: Vec<(usize, usize)> = (1..token.len())
            .filter_map(|i| {
                let (l, r) = token.split_at(i);
                Some((*rank_of.get(l)?, *rank_of.get(r)?))
            })
            .collect();
        local.sort_unstable();
        merges.extend(local);
    }
    merges
}

/// GPT-2's reversible byte → printable char table, which `tokenizers`' ByteLevel
/// pre-tokenizer and decoder use to spell raw bytes.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).expect("valid code point");
            next += 1;
            c
        };
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let t = byte_to_char();
        assert_eq!(t[b'a' as usize], 'a');
        // Space, newline and tab are the usual Ġ, Ċ, ĉ.
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'\t' as usize], 'ĉ');
        let unique: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(unique.len(), 256);
    }

    #[test]
    fn merges_follow_the_merged_tokens_rank() {
        let tokens: Vec<Vec<u8>> = [&b"a"[..], b"b", b"c", b"bc", b"ab", b"abc"]
            .iter()
            .map(|t| t.to_vec())
            .collect();
        let rank_of: HashMap<&[u8], usize> = tokens
            .iter()
            .enumerate()
            .map(|(r, t)| (t.as_slice(), r))
            .collect();
        // "bc" (rank 3) = b+c; "ab" (rank 4) = a+b; "abc" (rank 5) = a+bc or ab+c,
        // ordered by the left piece's rank.
        assert_eq!(
            derive_merges(&tokens, &rank_of),
            vec![(1, 2), (0, 1), (0, 3), (4, 2)]
        );
    }

    #[test]
    fn malformed_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tekken.json");
        std::fs::write(
            &path,
            r#"{"config": {"pattern": ".", "default_vocab_size": 3, "default_num_special_tokens": 1},
                "vocab": [{"rank": 0, "token_bytes": "YQ=="}]}"#,
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("tekken.json") && err.contains("2"), "{err}");
        std::fs::write(&path, "{}").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("not a tekken file"), "{err}");
    }
}
