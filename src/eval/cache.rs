//! Resumable per-clip score cache for `emomon eval`.
//!
//! Scoring a dataset takes minutes to hours; an interrupted or repeated run
//! should not pay again for clips already scored. Each result is appended as
//! one JSON line as soon as it is known, keyed by the SHA-256 of the audio
//! *bytes* (so renaming or moving a file keeps its entry, and editing it does
//! not) and of everything that changes the scores: model, method, labels,
//! prompt, temperature and decoding options, and for test-time scaling the
//! questions, samples, sampling temperature, seed and aggregation
//! ([`ScoringIdentity`]). A line cut
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
    /// Test-time scaling (several questions and/or sampled answers); absent for a
    /// single greedy answer, so such keys are the same as before ensembles existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleIdentity>,
}

/// What a test-time-scaling run adds to the scoring identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnsembleIdentity {
    /// Every question asked, resolved (the method's default when none was given).
    pub prompts: Vec<String>,
    /// Sampled answers per question (`None`: one greedy answer).
    pub samples: Option<usize>,
    /// Sampling temperature.
    pub sample_temperature: Option<f32>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// How the answers are combined (`mean`, `confidence`, `best-of-n`, `majority`).
    pub aggregate: String,
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
    /// Test-time scaling: every answer (question × sample) behind `probs`, so they can
    /// be re-aggregated without the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberScore>>,
    /// The aggregation that made `probs` from `members`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<String>,
    /// Answers that could not be read (`text`), of all answers to this clip.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unparseable: usize,
    /// Wall time of scoring this clip, milliseconds (model time only; a batch's time
    /// is split evenly over its clips).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One answer of a test-time-scaling ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberScore {
    /// Index of the question in [`EnsembleIdentity::prompts`].
    pub prompt: usize,
    /// Index of the sample (0 when greedy).
    pub sample: usize,
    /// The answer's distribution over the model's labels (`None`: unreadable).
    pub probs: Option<Vec<f32>>,
    /// Label logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
            members: None,
            aggregate: None,
            unparseable: 0,
            latency_ms: None,
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
            ensemble: None,
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
        // A single greedy answer keys as before ensembles existed (old caches stay valid).
        let json = serde_json::to_string(&id).unwrap();
        assert!(!json.contains("ensemble"), "{json}");
        // Every test-time-scaling setting is part of the key.
        let ens = EnsembleIdentity {
            prompts: vec!["q1".into(), "q2".into()],
            samples: Some(4),
            sample_temperature: Some(0.7),
            seed: Some(1),
            aggregate: "mean".into(),
        };
        let base = ScoringIdentity {
            ensemble: Some(ens.clone()),
            ..id.clone()
        };
        let variants = [
            EnsembleIdentity {
                aggregate: "confidence".into(),
                ..ens.clone()
            },
            EnsembleIdentity {
                seed: Some(2),
                ..ens.clone()
            },
            EnsembleIdentity {
                samples: Some(5),
                ..ens.clone()
            },
            EnsembleIdentity {
                sample_temperature: Some(0.8),
                ..ens.clone()
            },
            EnsembleIdentity {
                prompts: vec!["q2".into(), "q1".into()],
                ..ens.clone()
            },
        ];
        let mut keys = vec![k.clone(), base.key("00")];
        for v in variants {
            keys.push(
                ScoringIdentity {
                    ensemble: Some(v),
                    ..id.clone()
                }
                .key("00"),
            );
        }
        let unique: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
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
