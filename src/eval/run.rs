//! `emomon eval`'s orchestration: score every clip of a manifest with a model and
//! measure the predictions against the human references, per dataset.
//!
//! The run is resumable: each clip's scores are appended to a cache (by
//! default `OUT/cache.jsonl`) keyed by the audio's SHA-256 and the scoring
//! identity, so an interrupted or repeated run scores only what is missing.
//! Reference labels are mapped to the model's label names explicitly
//! ([`LabelMap`]); labels that still match nothing are reported, not dropped
//! silently. Outputs in `-o DIR`: `predictions.jsonl`, `summary.json`,
//! `summary.md`, and per group (overall, each dataset) `confusion_*.svg` and
//! `reliability_*.svg`.
//!
//! Clips are scored by [`EvalOptions::workers`] workers sharing the one model
//! ([`crate::workers`]); the cache, the outputs and every number are the same for
//! any number of workers. Notes and the progress bar go to stderr; the caller prints
//! the returned [`EvalReport`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::eval::cache::{CachedScore, ScoreCache, ScoringIdentity, sha256_hex};
use crate::eval::cache::{EnsembleIdentity, MemberScore};
use crate::eval::compare::{self, Comparison, ComparisonRow};
use crate::eval::crema::read_votes;
use crate::eval::labels::LabelMap;
use crate::eval::manifest::{ManifestItem, Reference, crema_items, read_manifest};
use crate::eval::metrics::argmax;
use crate::eval::plots::{confusion_svg, reliability_svg};
use crate::eval::report::{GroupSummary, Prediction, Summary, markdown, summarize_all};
use crate::eval::strategy::{Aggregate, aggregate};
use crate::model_scorer::{LoadedModel, ModelAnswer, ScoredBatch, open_model};
use anyhow::{Context, bail};
use emomon_models::alm::Sampling;
use emomon_models::scorer::Method;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::model_scorer::ModelOptions;
use crate::workers::{self, WorkerPlan};

mod evaluate;
mod folds;
mod scoring;
#[cfg(test)]
mod tests;

use evaluate::evaluate;
pub use evaluate::table;
use scoring::{Job, Outcome, score_all, set_subset_exponents};

/// What `emomon eval` does: plain options that the binary's flags (or a library
/// user) fill in. The flags' help (`emomon eval --help`) documents each in full.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Manifest CSV (`path`, `dataset`, `label`, optional `speaker` and `extra`).
    pub manifest: Option<PathBuf>,
    /// Directory that relative audio paths are under (default: the manifest's).
    pub data_root: Option<PathBuf>,
    /// CREMA-D vote table, with [`crema_audio`](Self::crema_audio).
    pub crema_votes: Option<PathBuf>,
    /// CREMA-D's `AudioWAV` directory.
    pub crema_audio: Option<PathBuf>,
    /// Only these datasets.
    pub datasets: Option<Vec<String>>,
    /// Every K-th clip only (at least 1).
    pub stride: u64,
    /// At most N clips.
    pub limit: Option<usize>,
    /// Extra reference → model label renames, `from=to,…`.
    pub label_map: Option<String>,
    /// Evaluate each dataset over the labels it has.
    pub per_dataset_labels: bool,
    /// Score cache (default `OUTPUT/cache.jsonl`).
    pub cache: Option<PathBuf>,
    /// Output directory (created if missing).
    pub output: PathBuf,
    /// Compare these scoring methods in one run (overrides the model's method).
    pub methods: Option<Vec<Method>>,
    /// Prompt ensemble file: one question per line.
    pub prompts: Option<PathBuf>,
    /// Sampled answers per question instead of one greedy answer.
    pub samples: Option<u64>,
    /// Softmax temperature of sampled answers (> 0).
    pub sample_temperature: f32,
    /// Seed of the sampled answers.
    pub seed: u64,
    /// How a clip's answers become one distribution (several to compare).
    pub aggregate: Vec<Aggregate>,
    /// Speaker-independent cross-validation folds of the default model.
    pub folds: Option<PathBuf>,
    /// The model and how it scores.
    pub model: ModelOptions,
    /// Scoring workers sharing the model, and their CPU threads.
    pub workers: WorkerPlan,
}

impl EvalOptions {
    /// Options with `emomon eval`'s defaults: the manifest scored by the default
    /// model with one worker, into `output`.
    pub fn new(manifest: Option<PathBuf>, output: PathBuf) -> Self {
        Self {
            manifest,
            data_root: None,
            crema_votes: None,
            crema_audio: None,
            datasets: None,
            stride: 1,
            limit: None,
            label_map: None,
            per_dataset_labels: false,
            cache: None,
            output,
            methods: None,
            prompts: None,
            samples: None,
            sample_temperature: 1.0,
            seed: 0,
            aggregate: vec![Aggregate::Mean],
            folds: None,
            model: ModelOptions::default(),
            workers: WorkerPlan::new(1),
        }
    }
}

/// What an evaluation produced, for the caller to print (its files are written).
#[derive(Debug, Clone)]
pub enum EvalReport {
    /// One method and strategy: its summary (the headline table: [`table`]).
    Single(Box<Summary>),
    /// Several methods or strategies (`OUTPUT/comparison.md`, also printed).
    Comparison {
        comparison: Comparison,
        /// `comparison.md` as written.
        markdown: String,
        /// Where it was written.
        path: PathBuf,
    },
}

/// The questions of a prompt ensemble: the --prompts file's lines, then each
/// --prompt. Empty when neither is given (the method's default question).
fn read_questions(args: &EvalOptions) -> anyhow::Result<Vec<String>> {
    let mut questions = Vec::new();
    if let Some(path) = &args.prompts {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--prompts: cannot read {}", path.display()))?;
        let before = questions.len();
        for line in text.lines() {
            // Whisper prefixes start with a space, which is kept; only the line end is
            // dropped.
            let line = line.trim_end_matches(['\r', '\n']);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            questions.push(line.to_string());
        }
        if questions.len() == before {
            bail!(
                "--prompts {}: no question in it (one per line; lines starting with # are comments)",
                path.display()
            );
        }
    }
    questions.extend(args.model.prompt.iter().cloned());
    for (i, q) in questions.iter().enumerate() {
        if questions[..i].contains(q) {
            bail!(
                "the prompt {q:?} is given twice (--prompts / --prompt); each question counts once"
            );
        }
    }
    Ok(questions)
}

/// How each clip's reference relates to the model's labels, for one run.
struct LabelPlan {
    map: LabelMap,
    /// Labels evaluated per dataset (the model's, or with --per-dataset-labels the
    /// model labels the dataset's references use).
    eval_labels: BTreeMap<String, Vec<String>>,
    renames: BTreeMap<String, String>,
    unmapped: BTreeMap<String, BTreeMap<String, usize>>,
    never_referenced: Vec<String>,
}

/// Reference labels of one manifest row, as written.
fn reference_labels(item: &ManifestItem) -> Vec<&str> {
    match &item.reference {
        Reference::None => vec![],
        Reference::Label(l) => vec![l.as_str()],
        Reference::Votes(v) => v
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|(l, _)| l.as_str())
            .collect(),
    }
}

impl LabelPlan {
    /// For each dataset scored over a subset of `model`'s labels, the exponent that
    /// gives the model's calibration for exactly that subset, where it has one
    /// ([`LoadedModel::label_subset_exponent`]: the default model's adapter has a
    /// temperature per training dataset).
    fn subset_exponents(&self, model: &LoadedModel) -> BTreeMap<String, f64> {
        self.eval_labels
            .iter()
            .filter(|(_, labels)| labels.as_slice() != model.labels())
            .map(|(dataset, labels)| (dataset.clone(), model.label_subset_exponent(labels)))
            .filter(|(_, e)| *e != 1.0)
            .collect()
    }

    /// Says which reference labels the model does not output.
    fn print_unmapped(&self) {
        for (dataset, labels) in &self.unmapped {
            let list: Vec<String> = labels.iter().map(|(l, n)| format!("{l} ({n})")).collect();
            eprintln!(
                "note: {dataset}: reference labels the model does not output (left out of the \
                 categorical metrics; map them with --label-map): {}",
                list.join(", ")
            );
        }
    }

    /// `all` are every manifest row of the selected datasets (not only the
    /// --limit/--stride sample), so a dataset's label set does not depend on
    /// which clips happened to be sampled.
    fn new(
        all: &[&ManifestItem],
        selected: &[&ManifestItem],
        model_labels: &[String],
        map: LabelMap,
        per_dataset: bool,
    ) -> Self {
        let mut used: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for item in all {
            let set = used.entry(&item.dataset).or_default();
            for raw in reference_labels(item) {
                set.insert(map.map(raw, model_labels));
            }
        }
        let eval_labels: BTreeMap<String, Vec<String>> = used
            .iter()
            .map(|(dataset, set)| {
                let own: Vec<String> = model_labels
                    .iter()
                    .filter(|l| set.contains(*l))
                    .cloned()
                    .collect();
                let labels = if per_dataset && !own.is_empty() {
                    own
                } else {
                    model_labels.to_vec()
                };
                (dataset.to_string(), labels)
            })
            .collect();
        let mut renames: BTreeMap<String, String> = BTreeMap::new();
        let mut unmapped: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut referenced: BTreeSet<String> = BTreeSet::new();
        for item in selected {
            for raw in reference_labels(item) {
                let mapped = map.map(raw, model_labels);
                if mapped != raw {
                    renames.insert(raw.to_string(), mapped.clone());
                }
                if model_labels.contains(&mapped) {
                    referenced.insert(mapped);
                } else {
                    *unmapped
                        .entry(item.dataset.clone())
                        .or_default()
                        .entry(mapped)
                        .or_insert(0) += 1;
                }
            }
        }
        let never_referenced = model_labels
            .iter()
            .filter(|l| !referenced.contains(*l))
            .cloned()
            .collect();
        Self {
            map,
            eval_labels,
            renames,
            unmapped,
            never_referenced,
        }
    }
}

/// Runs the evaluation `args` describe, writes its outputs and returns what to print.
pub fn run(args: &EvalOptions) -> anyhow::Result<EvalReport> {
    if let Some(dir) = &args.folds {
        return folds::run(args, dir);
    }
    let user_map = user_label_map(args)?;
    let (items, source) = read_items(args)?;
    let (in_datasets, selected) = select(args, &items, &source)?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create output directory {}", args.output.display()))?;

    let questions = read_questions(args)?;
    let sampling = args.samples.map(|n| Sampling {
        n: n as usize,
        temperature: args.sample_temperature,
        seed: args.seed,
    });
    if !(args.sample_temperature.is_finite() && args.sample_temperature > 0.0) {
        bail!(
            "--sample-temperature must be a finite number > 0, got {}",
            args.sample_temperature
        );
    }
    let ensemble = questions.len() > 1 || sampling.is_some();
    let mut aggregates: Vec<Aggregate> = Vec::new();
    for a in &args.aggregate {
        if !aggregates.contains(a) {
            aggregates.push(*a);
        }
    }
    let strategies: Vec<Option<Aggregate>> = if ensemble {
        aggregates.iter().copied().map(Some).collect()
    } else {
        if aggregates != [Aggregate::Mean] {
            eprintln!(
                "note: --aggregate has no effect with one question and no --samples (one answer per clip)"
            );
        }
        vec![None]
    };
    let methods: Vec<Method> = {
        let mut m: Vec<Method> = Vec::new();
        for &method in args.methods.as_deref().unwrap_or(&[args.model.method]) {
            if !m.contains(&method) {
                m.push(method);
            }
        }
        m
    };
    let comparing = args.methods.is_some() || strategies.len() > 1;

    // The model is opened once; every method and question is asked of it. With one
    // question it is the model's own prompt (as without ensembles); the default model
    // opens with first-token, the only method it has.
    let mut open_args = args.model.clone();
    open_args.prompt = if questions.len() == 1 {
        questions.clone()
    } else {
        Vec::new()
    };
    if open_args.model.is_none() {
        open_args.method = Method::FirstToken;
    } else if let Some(first) = args.methods.as_ref().and_then(|m| m.first()) {
        open_args.method = *first;
    }
    eprintln!(
        "Loading {} …",
        args.model.model.as_deref().unwrap_or("the default model")
    );
    let model = open_model(&open_args)?;
    let model_labels = model.labels().to_vec();
    let plan = LabelPlan::new(
        &in_datasets,
        &selected,
        &model_labels,
        LabelMap::new(&user_map),
        args.per_dataset_labels,
    );
    plan.print_unmapped();
    let exponents = plan.subset_exponents(&model);
    let mut cache = open_cache(args)?;

    let mut rows = Vec::new();
    let mut single = None;
    for &method in &methods {
        let asked = model.questions_for(method, &questions);
        if let Err(why) = model.supports(method, ensemble) {
            if !comparing {
                bail!("{why}");
            }
            eprintln!("note: {method}: not run: {why}");
            for st in &strategies {
                rows.push(ComparisonRow::not_run(
                    method.as_str(),
                    st.map(Aggregate::as_str),
                    describe(*st, asked.len(), sampling),
                    why.clone(),
                ));
            }
            continue;
        }
        let identities: Vec<ScoringIdentity> = strategies
            .iter()
            .map(|st| ScoringIdentity {
                model: model.id().to_string(),
                method: method.as_str().to_string(),
                labels: model_labels.clone(),
                prompt: open_args.prompt.first().cloned(),
                temperature: args.model.temperature,
                options: identity_options(args),
                ensemble: st.map(|a| EnsembleIdentity {
                    prompts: asked.clone(),
                    samples: sampling.map(|s| s.n),
                    sample_temperature: sampling.map(|s| s.temperature),
                    seed: sampling.map(|s| s.seed),
                    aggregate: a.as_str().to_string(),
                }),
            })
            .collect();
        let job = Job {
            model: &model,
            method,
            questions: asked.clone(),
            sampling,
            strategies: strategies.clone(),
            identities,
        };
        if comparing {
            eprintln!("{method}:");
        }
        let per_strategy = score_all(&job, &selected, &mut cache, args.workers)?;
        for ((st, identity), mut outcomes) in
            strategies.iter().zip(&job.identities).zip(per_strategy)
        {
            set_subset_exponents(&mut outcomes, &selected, &exponents);
            let mut rel = PathBuf::new();
            if args.methods.is_some() {
                rel.push(method.as_str());
            }
            if strategies.len() > 1 {
                rel.push(st.map_or("single", Aggregate::as_str));
            }
            let dir = args.output.join(&rel);
            let strategy = describe(*st, asked.len(), sampling);
            let stats = RunStats::of(&outcomes);
            match evaluate(args, &dir, &selected, outcomes, identity, &plan, &strategy) {
                Ok(summary) => {
                    eprintln!(
                        "{} clip(s): {} from the cache, {} scored, {} failed; wrote {}",
                        summary.n_items,
                        summary.cache_hits,
                        summary.scored,
                        summary.failed,
                        dir.display()
                    );
                    let mut row = ComparisonRow::from_summary(
                        &summary,
                        method.as_str(),
                        st.map(Aggregate::as_str),
                        strategy,
                        rel.display().to_string(),
                    );
                    row.answers = stats.answers;
                    row.unparseable = stats.unparseable;
                    row.mean_latency_ms = stats.mean_latency_ms;
                    rows.push(row);
                    if !comparing {
                        single = Some(summary);
                    }
                }
                Err(e) if comparing => {
                    eprintln!("note: {method} ({strategy}): {e:#}");
                    let mut row = ComparisonRow::not_run(
                        method.as_str(),
                        st.map(Aggregate::as_str),
                        strategy,
                        format!("{e:#}"),
                    );
                    row.answers = stats.answers;
                    row.unparseable = stats.unparseable;
                    row.mean_latency_ms = stats.mean_latency_ms;
                    rows.push(row);
                }
                Err(e) => return Err(e),
            }
        }
    }
    if comparing {
        let comparison = Comparison {
            model: model.id().to_string(),
            labels: model_labels,
            per_dataset_labels: args.per_dataset_labels,
            n_items: selected.len(),
            rows,
        };
        let md = compare::markdown(&comparison);
        let write = |name: &str, content: &[u8]| {
            let path = args.output.join(name);
            std::fs::write(&path, content)
                .with_context(|| format!("cannot write {}", path.display()))
        };
        write("comparison.json", &serde_json::to_vec_pretty(&comparison)?)?;
        write("comparison.md", md.as_bytes())?;
        return Ok(EvalReport::Comparison {
            comparison,
            markdown: md,
            path: args.output.join("comparison.md"),
        });
    }
    single
        .map(|s| EvalReport::Single(Box::new(s)))
        .context("no evaluation ran (no method and strategy selected)")
}

/// `--label-map` pairs.
fn user_label_map(args: &EvalOptions) -> anyhow::Result<Vec<(String, String)>> {
    Ok(match &args.label_map {
        Some(spec) => LabelMap::parse_pairs(spec).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    })
}

/// The rows of the manifest and the CREMA-D vote table, and what they were read from.
fn read_items(args: &EvalOptions) -> anyhow::Result<(Vec<ManifestItem>, String)> {
    let mut items = match &args.manifest {
        Some(m) => read_manifest(m, args.data_root.as_deref())?,
        None => Vec::new(),
    };
    if let (Some(table), Some(audio)) = (&args.crema_votes, &args.crema_audio) {
        let votes = read_votes(table)?;
        items.extend(crema_items(&votes, audio));
    }
    let source = match (&args.manifest, &args.crema_votes) {
        (Some(m), _) => m.display().to_string(),
        (None, Some(t)) => t.display().to_string(),
        (None, None) => bail!("give --manifest FILE or --crema-votes FILE"),
    };
    Ok((items, source))
}

/// Every row of the --datasets (`.0`, which fix each dataset's label set) and the
/// --stride/--limit sample of them that is scored (`.1`).
#[allow(clippy::type_complexity)]
fn select<'a>(
    args: &EvalOptions,
    items: &'a [ManifestItem],
    source: &str,
) -> anyhow::Result<(Vec<&'a ManifestItem>, Vec<&'a ManifestItem>)> {
    let in_datasets: Vec<&ManifestItem> = match &args.datasets {
        Some(wanted) => {
            let known: BTreeSet<&str> = items.iter().map(|i| i.dataset.as_str()).collect();
            for w in wanted {
                if !known.contains(w.as_str()) {
                    bail!(
                        "--datasets: {w:?} is not a dataset of {} (it has: {})",
                        source,
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    );
                }
            }
            items
                .iter()
                .filter(|i| wanted.contains(&i.dataset))
                .collect()
        }
        None => items.iter().collect(),
    };
    let selected: Vec<&ManifestItem> = in_datasets
        .iter()
        .step_by(args.stride as usize)
        .take(args.limit.unwrap_or(usize::MAX))
        .copied()
        .collect();
    if selected.is_empty() {
        bail!("no clips selected from {source} (check --limit; a vote table needs voice rows)");
    }
    Ok((in_datasets, selected))
}

/// The score cache (`--cache`, default OUT/cache.jsonl).
fn open_cache(args: &EvalOptions) -> anyhow::Result<ScoreCache> {
    let cache_path = args
        .cache
        .clone()
        .unwrap_or_else(|| args.output.join("cache.jsonl"));
    let cache = ScoreCache::open(&cache_path)?;
    if cache.skipped_lines > 0 {
        eprintln!(
            "note: {} unreadable line(s) in {} ignored (an interrupted write?)",
            cache.skipped_lines,
            cache_path.display()
        );
    }
    Ok(cache)
}

/// Scoring options that change the scores, as part of the cache identity.
fn identity_options(args: &EvalOptions) -> Vec<String> {
    vec![
        format!("max_new_tokens={}", args.model.max_new_tokens),
        format!("pad={}", args.model.pad_whisper),
        // As the `--quant` flag's value was once written (`{:?}`): keeps existing caches.
        format!("quant={}", if args.model.quantize { "Q8" } else { "F32" }),
    ]
}

/// The strategy of a run in words.
fn describe(st: Option<Aggregate>, questions: usize, sampling: Option<Sampling>) -> String {
    let Some(a) = st else {
        return "one greedy answer".into();
    };
    let answers = match sampling {
        Some(s) => format!("{} sample(s) at T={} (seed {})", s.n, s.temperature, s.seed),
        None => "greedy".into(),
    };
    format!("{a} of {questions} prompt(s) × {answers}")
}

/// Answers, unreadable answers and latency over a run's clips.
struct RunStats {
    answers: usize,
    unparseable: usize,
    mean_latency_ms: Option<f64>,
}

impl RunStats {
    fn of(outcomes: &[Outcome]) -> Self {
        let (mut answers, mut unparseable, mut ms, mut timed) = (0, 0, 0.0, 0usize);
        for s in outcomes.iter().filter_map(|o| o.score.as_ref()) {
            answers += s.members.as_ref().map_or(1, Vec::len);
            unparseable += s.unparseable;
            if let Some(l) = s.latency_ms {
                ms += l;
                timed += 1;
            }
        }
        Self {
            answers,
            unparseable,
            mean_latency_ms: (timed > 0).then(|| ms / timed as f64),
        }
    }
}
