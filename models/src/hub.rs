//! Finding a model directory: a local path, or a Hugging Face model id already present
//! in the hf-hub cache. Nothing is ever downloaded (emomon runs offline).
//!
//! Cache layout (huggingface_hub): `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`; a model `org/name` lives in `models--org--name/` with
//! `refs/<revision>` holding a commit hash and `snapshots/<hash>/` holding the files.

use std::path::{Path, PathBuf};

/// Why a model could not be located.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Neither a directory nor a cached model id.
    #[error(
        "model `{spec}` is not a directory and not in the Hugging Face cache (looked in {looked}); \
         pass a local HF model directory, or download it once with `huggingface-cli download {spec}`"
    )]
    NotFound {
        /// What the user gave.
        spec: String,
        /// Where we looked.
        looked: String,
    },
    /// A path (not a model id) that is not a directory.
    #[error(
        "model directory {spec} {problem}; pass a Hugging Face model directory (config.json, *.safetensors, tokenizer.json)"
    )]
    NotADirectory {
        /// What the user gave.
        spec: String,
        /// `does not exist` or `is a file, not a directory`.
        problem: &'static str,
    },
    /// A cache entry exists but is broken.
    #[error("{path}: {message}")]
    BadCache {
        /// Offending path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The hf-hub cache directory from the environment (does not check that it exists).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// Resolves `spec` — a directory, or `org/name[@revision]` in the cache at `cache` — to
/// the directory holding `config.json` and the weights.
pub fn resolve_model(spec: &str, cache: Option<&Path>) -> Result<PathBuf, HubError> {
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        return Ok(as_path.to_path_buf());
    }
    // A path is told it does not exist, not to run a hub download: model ids are
    // `org/name[@rev]`, never absolute, relative-dotted or deeper.
    let looks_like_path = spec.starts_with(['/', '.', '~'])
        || spec.ends_with('/')
        || spec
            .split('@')
            .next()
            .is_some_and(|id| id.matches('/').count() != 1)
        || as_path.exists();
    if looks_like_path {
        return Err(HubError::NotADirectory {
            spec: spec.to_string(),
            problem: if as_path.exists() {
                "is a file, not a directory"
            } else {
                "does not exist"
            },
        });
    }
    let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let not_found = |looked: String| HubError::NotFound {
        spec: spec.to_string(),
        looked,
    };
    let Some(cache) = cache else {
        return Err(not_found("no cache directory (HOME unset)".into()));
    };
    if id.split('/').count() != 2 || id.starts_with('/') || id.contains("..") {
        return Err(not_found(format!("`{spec}` is not an org/name model id")));
    }
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    if !repo.is_dir() {
        return Err(not_found(repo.display().to_string()));
    }
    // A revision is either a ref name (refs/<name> holds the commit) or a commit hash.
    let ref_file = repo.join("refs").join(revision);
    let commit = if ref_file.is_file() {
        std::fs::read_to_string(&ref_file)
            .map_err(|e| HubError::BadCache {
                path: ref_file.clone(),
                message: e.to_string(),
            })?
            .trim()
            .to_string()
    } else {
        revision.to_string()
    };
    let snapshot = repo.join("snapshots").join(&commit);
    if !snapshot.join("config.json").is_file() {
        return Err(HubError::BadCache {
            path: snapshot,
            message: "snapshot has no config.json (incomplete download?)".into(),
        });
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_cached_ids_and_paths() {
        let root = std::env::temp_dir().join(format!("emomon-hub-{}", std::process::id()));
        let repo = root.join("models--org--tiny");
        let snap = repo.join("snapshots/abc123");
        std::fs::create_dir_all(&snap).expect("dirs");
        std::fs::create_dir_all(repo.join("refs")).expect("refs");
        std::fs::write(repo.join("refs/main"), "abc123\n").expect("ref");
        std::fs::write(snap.join("config.json"), "{}").expect("config");

        assert_eq!(resolve_model("org/tiny", Some(&root)).expect("main"), snap);
        assert_eq!(
            resolve_model("org/tiny@abc123", Some(&root)).expect("hash"),
            snap
        );
        assert_eq!(
            resolve_model(snap.to_str().expect("utf8"), None).expect("path"),
            snap
        );
        let err = resolve_model("org/missing", Some(&root)).expect_err("missing");
        assert!(err.to_string().contains("models--org--missing"), "{err}");
        assert!(matches!(
            resolve_model("org/tiny@nothere", Some(&root)),
            Err(HubError::BadCache { .. })
        ));
        // Paths are told what is wrong with them, not to download (issue 18 item 8).
        for (spec, problem) in [
            ("/nonexistent/model-dir", "does not exist"),
            ("./models/none", "does not exist"),
            ("whisper-base", "does not exist"),
            (
                snap.join("config.json").to_str().expect("utf8"),
                "is a file",
            ),
        ] {
            let err = resolve_model(spec, Some(&root))
                .expect_err(spec)
                .to_string();
            assert!(err.contains(problem) && !err.contains("download"), "{err}");
        }
        std::fs::remove_dir_all(&root).ok();
    }
}
