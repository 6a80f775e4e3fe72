//! Resumable per-clip score cache for `emomon eval`.
//!
//! Scoring a dataset takes minutes to hours; an interrupted or repeated run
//! should not pay again for clips already scored. Each result is appended as
//! one JSON line as soon as it is known, keyed by the SHA-256 of the audio
//! *bytes* (so renaming or moving a file keeps its entry, and editing it does
//! not) and of everything that changes the scores: model, method, labels,
//! prompt, temperature and decoding options ([`ScoringIdentity`]). A line cut
//! short by a crash is skipped on reading (and counted), never fatal.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Everything besides the audio that determines a clip's scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoringIdentity {
    /// Model id (the `--model` value, or the default model's name).
    pub model: String,
    /// Scoring method.
    pub method: String,
    /// Labels in output order.
    pub labels: Vec<String>,
    /// `--prompt`, if any.
    pub prompt: Option<String>,
    /// `--temperature`, if any.
    pub temperature: Option<f32>,
    /// Anything else that changes scores (`max_new_tokens`, padding, precision),
    /// as `name=value` strings.
    pub options: Vec<String>,
}

impl ScoringIdentity {
    /// Cache key of one clip under this identity.
    pub fn key(&self, audio_sha256: &str) -> String {
        let mut h = Sha256::new();
        h.update(audio_sha256.as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(self).expect("identity serialises"));
        hex(&h.finalize())
    }
}

/// SHA-256 of a byte string, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One cached result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedScore {
    /// [`ScoringIdentity::key`].
    pub key: String,
    /// SHA-256 of the audio file's bytes.
    pub audio_sha256: String,
    /// The path it was first scored under (informative only).
    pub path: String,
    /// Model id.
    pub model: String,
    /// Scoring method.
    pub method: String,
    /// Labels in output order.
    pub labels: Vec<String>,
    /// The distribution (`None` when the answer could not be read).
    pub probs: Option<Vec<f32>>,
    /// Label logits.
    pub logits: Option<Vec<f32>>,
    /// Generated answer (`token-average`, `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
    /// Why there is no distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The cache file, read once and appended to.
pub struct ScoreCache {
    path: PathBuf,
    entries: HashMap<String, CachedScore>,
    file: File,
    /// Lines that could not be read (e.g. cut short by a crash).
    pub skipped_lines: usize,
}

impl ScoreCache {
    /// Opens (creating if needed) the cache at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut entries = HashMap::new();
        let mut skipped_lines = 0;
        let mut ends_mid_line = false;
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read cache {}", path.display()))?;
            ends_mid_line = !text.is_empty() && !text.ends_with('\n');
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str::<CachedScore>(line) {
                    Ok(entry) => {
                        entries.insert(entry.key.clone(), entry);
                    }
                    Err(_) => skipped_lines += 1,
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot write cache {}", path.display()))?;
        if ends_mid_line {
            // A writer died mid-line: start the next entry on a line of its own.
            file.write_all(b"\n")
                .with_context(|| format!("cannot write cache {}", path.display()))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
            file,
            skipped_lines,
        })
    }

    /// The entry for `key`, if scored before.
    pub fn get(&self, key: &str) -> Option<&CachedScore> {
        self.entries.get(key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records a result: appended and flushed at once, so an interrupted run
    /// keeps everything scored so far.
    pub fn insert(&mut self, entry: CachedScore) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(&entry)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("cannot write cache {}", self.path.display()))?;
        self.entries.insert(entry.key.clone(), entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str) -> CachedScore {
        CachedScore {
            key: key.into(),
            audio_sha256: "ab".into(),
            path: "a.wav".into(),
            model: "m".into(),
            method: "first-token".into(),
            labels: vec!["x".into(), "y".into()],
            probs: Some(vec![0.25, 0.75]),
            logits: Some(vec![0.0, 1.1]),
            generated: None,
            error: None,
        }
    }

    #[test]
    fn keys_depend_on_audio_and_identity() {
        let id = ScoringIdentity {
            model: "m".into(),
            method: "first-token".into(),
            labels: vec!["a".into(), "b".into()],
            prompt: None,
            temperature: None,
            options: vec![],
        };
        let k = id.key("00");
        assert_eq!(k, id.key("00"));
        assert_ne!(k, id.key("01"));
        let mut other = id.clone();
        other.labels.reverse();
        assert_ne!(k, other.key("00"));
        other = id.clone();
        other.prompt = Some("p".into());
        assert_ne!(k, other.key("00"));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn survives_reopen_and_truncated_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        let mut cache = ScoreCache::open(&path).unwrap();
        cache.insert(entry("k1")).unwrap();
        drop(cache);
        // A crash mid-write leaves a partial line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"key\":\"k2\",\"aud").unwrap();
        drop(f);
        let mut cache = ScoreCache::open(&path).unwrap();
        assert_eq!(cache.skipped_lines, 1);
        assert_eq!(cache.get("k1"), Some(&entry("k1")));
        cache.insert(entry("k3")).unwrap();
        drop(cache);
        let cache = ScoreCache::open(&path).unwrap();
        assert_eq!(cache.len(), 2, "k3 must not be glued to the partial line");
        assert!(cache.get("k3").is_some());
    }
}
