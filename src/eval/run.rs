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

mod folds;
#[cfg(test)]
mod tests;

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
        for ((st, identity), outcomes) in strategies.iter().zip(&job.identities).zip(per_strategy) {
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

/// Metrics and outputs of one method × strategy into `dir`.
fn evaluate(
    args: &EvalOptions,
    dir: &Path,
    selected: &[&ManifestItem],
    outcomes: Vec<Outcome>,
    identity: &ScoringIdentity,
    plan: &LabelPlan,
    strategy: &str,
) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output directory {}", dir.display()))?;
    let cache_hits = outcomes.iter().filter(|o| o.cached).count();
    let scored = outcomes
        .iter()
        .filter(|o| !o.cached && o.score.is_some())
        .count();
    let records: Vec<(Prediction, Extras)> = selected
        .iter()
        .zip(outcomes)
        .map(|(item, outcome)| predict(item, outcome, identity, plan))
        .collect();
    let predictions: Vec<Prediction> = records.iter().map(|(p, _)| p.clone()).collect();
    let failed = predictions.iter().filter(|p| p.probs.is_none()).count();
    if failed == predictions.len() {
        let first = predictions[0].error.as_deref().unwrap_or("unknown error");
        bail!(
            "none of the {} clip(s) could be scored; the first ({}): {first}",
            predictions.len(),
            predictions[0].path
        );
    }
    let model_labels = identity.labels.clone();
    let (overall, datasets) =
        summarize_all(&predictions, &model_labels).context("computing the metrics")?;
    let summary = Summary {
        model: identity.model.clone(),
        method: if identity.ensemble.is_some() {
            format!("{} ({strategy})", identity.method)
        } else {
            identity.method.clone()
        },
        labels: model_labels,
        per_dataset_labels: args.per_dataset_labels,
        n_items: predictions.len(),
        cache_hits,
        scored,
        failed,
        overall,
        datasets,
        label_renames: plan.renames.clone(),
        unmapped_labels: plan.unmapped.clone(),
        labels_never_referenced: plan.never_referenced.clone(),
    };
    write_outputs(dir, &records, &summary)?;
    Ok(summary)
}

/// One clip's scores, from the cache or the model.
struct Outcome {
    audio_sha256: String,
    score: Option<CachedScore>,
    cached: bool,
    error: Option<String>,
}

impl Outcome {
    fn new() -> Self {
        Self {
            audio_sha256: String::new(),
            score: None,
            cached: false,
            error: None,
        }
    }
}

/// What to score: a method, its questions and sampling, and the strategies (with
/// their cache identities) whose outcomes are wanted.
struct Job<'a> {
    model: &'a dyn ClipScorer,
    method: Method,
    questions: Vec<String>,
    sampling: Option<Sampling>,
    /// `[None]` for one greedy answer per clip; else the aggregations.
    strategies: Vec<Option<Aggregate>>,
    identities: Vec<ScoringIdentity>,
}

/// What an evaluation asks of the model; a trait so tests can put a stand-in (one
/// that panics on a chosen clip) in its place. Shared by every worker, so `Sync`.
trait ClipScorer: Sync {
    fn natural_batch_for(&self, method: Method) -> usize;
    fn score_method(&self, audio: &[&[f32]], method: Method) -> anyhow::Result<ScoredBatch>;
    fn score_ensemble(
        &self,
        audio: &[f32],
        method: Method,
        questions: &[String],
        sampling: Option<Sampling>,
    ) -> anyhow::Result<(Vec<Vec<ModelAnswer>>, Duration)>;
}

impl ClipScorer for LoadedModel {
    fn natural_batch_for(&self, method: Method) -> usize {
        LoadedModel::natural_batch_for(self, method)
    }
    fn score_method(&self, audio: &[&[f32]], method: Method) -> anyhow::Result<ScoredBatch> {
        LoadedModel::score_method(self, audio, method)
    }
    fn score_ensemble(
        &self,
        audio: &[f32],
        method: Method,
        questions: &[String],
        sampling: Option<Sampling>,
    ) -> anyhow::Result<(Vec<Vec<ModelAnswer>>, Duration)> {
        LoadedModel::score_ensemble(self, audio, method, questions, sampling)
    }
}

impl Job<'_> {
    fn ensemble(&self) -> bool {
        self.strategies.iter().any(Option::is_some)
    }
}

/// Reads, hashes and (unless cached) scores every clip, with a progress bar:
/// one greedy answer per clip in batches of the model's natural size, or a
/// clip's whole ensemble at once (encoded once), aggregated by every strategy.
/// Batches and ensembles are scored by `plan`'s workers, their results recorded in
/// clip order. Returns `[strategy][clip]`. Unreadable audio, model failures and
/// scorer panics are recorded per clip, so one bad file does not end a long run.
fn score_all(
    job: &Job,
    items: &[&ManifestItem],
    cache: &mut ScoreCache,
    plan: WorkerPlan,
) -> anyhow::Result<Vec<Vec<Outcome>>> {
    let bar = ProgressBar::new(items.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>8} [{bar:30}] {pos}/{len} clips, {elapsed} elapsed, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message("scoring");
    let mut run = ScoreRun {
        job,
        items,
        cache,
        outcomes: (0..job.strategies.len())
            .map(|_| Vec::with_capacity(items.len()))
            .collect(),
        pending: Vec::new(),
        next: 0,
        batch_size: job.model.natural_batch_for(job.method).max(1),
        bar,
    };
    workers::run_ordered(plan, &mut run, |work| match work {
        ClipWork::Batch(pending) => {
            let audio: Vec<&[f32]> = pending.iter().map(|(_, s)| s.as_slice()).collect();
            ClipScores::Batch(job.model.score_method(&audio, job.method))
        }
        ClipWork::Ensemble(_, samples) => ClipScores::Ensemble(job.model.score_ensemble(
            samples,
            job.method,
            &job.questions,
            job.sampling,
        )),
    })?;
    run.bar.finish_and_clear();
    Ok(run.outcomes)
}

/// What a worker scores: a batch of clips (index, audio), or one clip's ensemble.
enum ClipWork {
    Batch(Vec<(usize, Vec<f32>)>),
    Ensemble(usize, Vec<f32>),
}

/// A worker's result for a [`ClipWork`].
enum ClipScores {
    Batch(anyhow::Result<ScoredBatch>),
    Ensemble(anyhow::Result<(Vec<Vec<ModelAnswer>>, Duration)>),
}

/// The state of [`score_all`] on the calling thread: reading clips into work, and
/// recording (and caching) the workers' results.
struct ScoreRun<'a, 'j> {
    job: &'a Job<'j>,
    items: &'a [&'a ManifestItem],
    cache: &'a mut ScoreCache,
    outcomes: Vec<Vec<Outcome>>,
    /// Clips read for the next batch.
    pending: Vec<(usize, Vec<f32>)>,
    /// Next clip to read.
    next: usize,
    batch_size: usize,
    bar: ProgressBar,
}

impl workers::OrderedJobs for ScoreRun<'_, '_> {
    type Job = ClipWork;
    type Output = ClipScores;

    fn next_job(&mut self) -> anyhow::Result<Option<ClipWork>> {
        while self.next < self.items.len() {
            let i = self.next;
            self.next += 1;
            if let Some(samples) = self.read_clip(i)? {
                if self.job.ensemble() {
                    return Ok(Some(ClipWork::Ensemble(i, samples)));
                }
                self.pending.push((i, samples));
                if self.pending.len() >= self.batch_size {
                    return Ok(Some(ClipWork::Batch(std::mem::take(&mut self.pending))));
                }
            }
        }
        Ok((!self.pending.is_empty()).then(|| ClipWork::Batch(std::mem::take(&mut self.pending))))
    }

    fn finish(&mut self, work: ClipWork, scores: Result<ClipScores, String>) -> anyhow::Result<()> {
        let scores = scores.map_err(|panic| format!("the scorer panicked: {panic}"));
        match (work, scores) {
            (ClipWork::Batch(pending), scores) => {
                let n = pending.len() as u64;
                let result = match scores {
                    Ok(ClipScores::Batch(r)) => r.map_err(|e| format!("{e:#}")),
                    Ok(ClipScores::Ensemble(_)) => unreachable!("a batch gives a batch"),
                    Err(panic) => Err(panic),
                };
                score_batch(
                    self.job,
                    self.items,
                    &pending,
                    result,
                    &mut self.outcomes[0],
                    self.cache,
                )?;
                self.bar.inc(n);
            }
            (ClipWork::Ensemble(i, _), scores) => {
                let result = match scores {
                    Ok(ClipScores::Ensemble(r)) => r.map_err(|e| format!("{e:#}")),
                    Ok(ClipScores::Batch(_)) => unreachable!("an ensemble gives an ensemble"),
                    Err(panic) => Err(panic),
                };
                let mut clip: Vec<&mut Outcome> =
                    self.outcomes.iter_mut().map(|o| &mut o[i]).collect();
                score_clip(self.job, self.items[i], result, &mut clip, self.cache)?;
                self.bar.inc(1);
            }
        }
        Ok(())
    }
}

impl ScoreRun<'_, '_> {
    /// Reads and hashes clip `i` and records its outcomes; its audio when the model
    /// must score it (not cached, and decodable).
    fn read_clip(&mut self, i: usize) -> anyhow::Result<Option<Vec<f32>>> {
        let (job, item) = (self.job, self.items[i]);
        let mut clip: Vec<Outcome> = (0..job.strategies.len()).map(|_| Outcome::new()).collect();
        let mut samples = None;
        match std::fs::read(&item.audio) {
            Err(e) => {
                let msg = format!(
                    "cannot read {} (line {} of the manifest or vote table): {e}",
                    item.audio.display(),
                    item.line
                );
                clip.iter_mut().for_each(|o| o.error = Some(msg.clone()));
            }
            Ok(bytes) => {
                let sha = sha256_hex(&bytes);
                clip.iter_mut().for_each(|o| o.audio_sha256 = sha.clone());
                if !from_cache(job, &sha, item, &mut clip, self.cache)? {
                    match decode_16k(&item.audio) {
                        Ok(s) => samples = Some(s),
                        Err(e) => {
                            let msg =
                                format!("{e:#} (line {} of the manifest or vote table)", item.line);
                            clip.iter_mut().for_each(|o| o.error = Some(msg.clone()));
                        }
                    }
                }
            }
        }
        for (s, o) in clip.into_iter().enumerate() {
            self.outcomes[s].push(o);
        }
        if samples.is_none() {
            self.bar.inc(1);
        }
        Ok(samples)
    }
}

/// Fills `clip`'s outcomes from the cache: each strategy's own entry, or for an
/// ensemble the answers cached under another aggregation of the same identity,
/// re-aggregated (and cached) without the model. `false` if the model is needed.
fn from_cache(
    job: &Job,
    sha: &str,
    item: &ManifestItem,
    clip: &mut [Outcome],
    cache: &mut ScoreCache,
) -> anyhow::Result<bool> {
    let keys: Vec<String> = job.identities.iter().map(|id| id.key(sha)).collect();
    let hits: Vec<Option<CachedScore>> = keys.iter().map(|k| cache.get(k).cloned()).collect();
    if hits.iter().all(Option::is_some) {
        for (o, h) in clip.iter_mut().zip(hits) {
            o.score = h;
            o.cached = true;
        }
        return Ok(true);
    }
    if !job.ensemble() {
        return Ok(false);
    }
    // Any aggregation of this identity holds every answer.
    let base = &job.identities[0];
    let mut members = None;
    for a in Aggregate::ALL {
        let mut id = base.clone();
        if let Some(e) = &mut id.ensemble {
            e.aggregate = a.as_str().to_string();
        }
        if let Some(m) = cache.get(&id.key(sha)).and_then(|h| h.members.clone()) {
            members = Some((m, cache.get(&id.key(sha)).and_then(|h| h.latency_ms)));
            break;
        }
    }
    let Some((members, latency_ms)) = members else {
        return Ok(false);
    };
    for (s, o) in clip.iter_mut().enumerate() {
        let entry = match hits[s].clone() {
            Some(h) => h,
            None => {
                let e = ensemble_entry(job, s, sha, item, members.clone(), latency_ms);
                cache.insert(e.clone())?;
                e
            }
        };
        o.score = Some(entry);
        o.cached = true;
    }
    Ok(true)
}

/// Records (and caches) each strategy's outcome of one clip's scored ensemble.
fn score_clip(
    job: &Job,
    item: &ManifestItem,
    result: Result<(Vec<Vec<ModelAnswer>>, Duration), String>,
    clip: &mut [&mut Outcome],
    cache: &mut ScoreCache,
) -> anyhow::Result<()> {
    match result {
        Ok((answers, total)) => {
            let members: Vec<MemberScore> = answers
                .into_iter()
                .enumerate()
                .flat_map(|(q, answers)| {
                    answers.into_iter().enumerate().map(move |(k, u)| {
                        let (probs, logits, error) = match u.scores {
                            Ok(s) => (Some(s.probs), Some(s.logits), None),
                            Err(e) => (None, None, Some(e)),
                        };
                        MemberScore {
                            prompt: q,
                            sample: k,
                            probs,
                            logits,
                            generated: u.generated,
                            error,
                        }
                    })
                })
                .collect();
            let latency = Some(total.as_secs_f64() * 1e3);
            let sha = clip[0].audio_sha256.clone();
            for (s, o) in clip.iter_mut().enumerate() {
                let entry = ensemble_entry(job, s, &sha, item, members.clone(), latency);
                cache.insert(entry.clone())?;
                o.score = Some(entry);
            }
        }
        Err(e) => {
            let msg = format!(
                "scoring failed: {e} (line {} of the manifest or vote table)",
                item.line
            );
            clip.iter_mut().for_each(|o| o.error = Some(msg.clone()));
        }
    }
    Ok(())
}

/// Strategy `s`'s cache entry for a clip's answers `members`.
fn ensemble_entry(
    job: &Job,
    s: usize,
    sha: &str,
    item: &ManifestItem,
    members: Vec<MemberScore>,
    latency_ms: Option<f64>,
) -> CachedScore {
    let identity = &job.identities[s];
    let how = job.strategies[s].unwrap_or(Aggregate::Mean);
    let readable: Vec<Vec<f64>> = members
        .iter()
        .filter_map(|m| m.probs.as_ref())
        .map(|p| p.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let unparseable = members.len() - readable.len();
    let (probs, error) = match aggregate(how, &readable) {
        Ok(p) => (Some(p.iter().map(|&v| v as f32).collect()), None),
        Err(e) => (
            None,
            Some(format!(
                "{e}: all {} answers failed; the first: {}",
                members.len(),
                members
                    .first()
                    .and_then(|m| m.error.as_deref())
                    .unwrap_or("")
            )),
        ),
    };
    CachedScore {
        key: identity.key(sha),
        audio_sha256: sha.to_string(),
        path: item.path.clone(),
        model: identity.model.clone(),
        method: identity.method.clone(),
        labels: identity.labels.clone(),
        probs,
        logits: None,
        generated: members.first().and_then(|m| m.generated.clone()),
        error,
        members: Some(members),
        aggregate: Some(how.as_str().to_string()),
        unparseable,
        latency_ms,
    }
}

/// Records (and caches) each result of a scored batch of clips (one greedy answer
/// each).
fn score_batch(
    job: &Job,
    items: &[&ManifestItem],
    pending: &[(usize, Vec<f32>)],
    result: Result<ScoredBatch, String>,
    outcomes: &mut [Outcome],
    cache: &mut ScoreCache,
) -> anyhow::Result<()> {
    let identity = &job.identities[0];
    match result {
        Ok(batch) => {
            let latency = batch.total.as_secs_f64() * 1e3 / pending.len().max(1) as f64;
            for ((i, _), result) in pending.iter().zip(batch.utterances) {
                let outcome = &mut outcomes[*i];
                let (probs, logits, error) = match result.scores {
                    Ok(s) => (Some(s.probs), Some(s.logits), None),
                    Err(e) => (None, None, Some(e)),
                };
                let entry = CachedScore {
                    key: identity.key(&outcome.audio_sha256),
                    audio_sha256: outcome.audio_sha256.clone(),
                    path: items[*i].path.clone(),
                    model: identity.model.clone(),
                    method: identity.method.clone(),
                    labels: identity.labels.clone(),
                    unparseable: usize::from(probs.is_none()),
                    probs,
                    logits,
                    generated: result.generated,
                    error,
                    members: None,
                    aggregate: None,
                    latency_ms: Some(latency),
                };
                cache.insert(entry.clone())?;
                outcome.score = Some(entry);
            }
        }
        Err(e) => {
            for (i, _) in pending.iter() {
                outcomes[*i].error = Some(format!(
                    "scoring failed: {e} (line {} of the manifest or vote table)",
                    items[*i].line
                ));
            }
        }
    }
    Ok(())
}

/// The whole file, downmixed and resampled to 16 kHz mono.
fn decode_16k(path: &Path) -> anyhow::Result<Vec<f32>> {
    let samples = crate::audio::whole_file::read_16k(path)?;
    if samples.is_empty() {
        bail!("{} has no audio", path.display());
    }
    Ok(samples)
}

/// A clip's prediction record: the model's distribution (restricted to the
/// dataset's labels if asked) beside its mapped reference.
/// What `predictions.jsonl` adds to a [`Prediction`]: the answers behind an
/// ensemble's distribution (over the model's labels, in `summary.json`'s `labels`
/// order) so anyone can re-aggregate them, and the model time.
#[derive(Debug, Clone, Default, Serialize)]
struct Extras {
    #[serde(skip_serializing_if = "Option::is_none")]
    aggregate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<Vec<MemberScore>>,
    #[serde(skip_serializing_if = "is_zero")]
    unparseable: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One line of `predictions.jsonl`.
#[derive(Serialize)]
struct Record<'a> {
    #[serde(flatten)]
    prediction: &'a Prediction,
    #[serde(flatten)]
    extras: &'a Extras,
}

fn predict(
    item: &ManifestItem,
    outcome: Outcome,
    identity: &ScoringIdentity,
    plan: &LabelPlan,
) -> (Prediction, Extras) {
    let extras = outcome
        .score
        .as_ref()
        .map(|s| Extras {
            aggregate: s.aggregate.clone(),
            members: s.members.clone(),
            unparseable: s.unparseable,
            latency_ms: s.latency_ms,
        })
        .unwrap_or_default();
    let model_labels = &identity.labels;
    let labels = plan
        .eval_labels
        .get(&item.dataset)
        .cloned()
        .unwrap_or_else(|| model_labels.clone());
    let (mut label, mut label_raw, mut reference) = (None, None, None);
    match &item.reference {
        Reference::None => {}
        Reference::Label(raw) => {
            let mapped = plan.map.map(raw, model_labels);
            if &mapped != raw {
                label_raw = Some(raw.clone());
            }
            label = Some(mapped);
        }
        Reference::Votes(votes) => {
            let mut r = vec![0.0; labels.len()];
            for (raw, w) in votes {
                let mapped = plan.map.map(raw, model_labels);
                if let Some(k) = labels.iter().position(|l| *l == mapped) {
                    r[k] += w;
                }
            }
            let total: f64 = r.iter().sum();
            if total > 0.0 {
                reference = Some(r.iter().map(|v| v / total).collect());
            }
        }
    }
    let mut error = outcome.error;
    let (mut probs, mut model_probs) = (None, None);
    if let Some(score) = &outcome.score {
        match &score.probs {
            Some(p) => {
                let full: Vec<f64> = p.iter().map(|&v| f64::from(v)).collect();
                if labels == *model_labels {
                    probs = Some(full);
                } else {
                    let sub: Vec<f64> = labels
                        .iter()
                        .map(|l| {
                            model_labels
                                .iter()
                                .position(|m| m == l)
                                .map_or(0.0, |k| full[k])
                        })
                        .collect();
                    let total: f64 = sub.iter().sum();
                    if total > 0.0 {
                        probs = Some(sub.iter().map(|v| v / total).collect());
                    } else {
                        error = Some("the model gave the dataset's labels no probability".into());
                    }
                    model_probs = Some(full);
                }
            }
            None => {
                error = Some(format!(
                    "the model's answer {:?} could not be read: {}",
                    score.generated.as_deref().unwrap_or(""),
                    score.error.as_deref().unwrap_or("")
                ));
            }
        }
    }
    let top = probs.as_ref().map(|p: &Vec<f64>| labels[argmax(p)].clone());
    let prediction = Prediction {
        path: item.path.clone(),
        dataset: item.dataset.clone(),
        speaker: item.speaker.clone(),
        label,
        label_raw,
        reference,
        arousal: item.arousal,
        valence: item.valence,
        labels,
        probs,
        top,
        model_probs,
        method: identity.method.clone(),
        model: identity.model.clone(),
        audio_sha256: outcome.audio_sha256,
        cached: outcome.cached,
        error,
    };
    (prediction, extras)
}

/// File-name-safe form of a dataset name.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write_outputs(
    dir: &Path,
    predictions: &[(Prediction, Extras)],
    summary: &Summary,
) -> anyhow::Result<()> {
    let write = |name: &str, content: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))
    };
    let mut jsonl = Vec::new();
    for (prediction, extras) in predictions {
        serde_json::to_writer(&mut jsonl, &Record { prediction, extras })?;
        jsonl.push(b'\n');
    }
    write("predictions.jsonl", &jsonl)?;
    write("summary.json", &serde_json::to_vec_pretty(summary)?)?;
    write("summary.md", markdown(summary).as_bytes())?;
    let groups = summary
        .datasets
        .keys()
        .map(|n| (format!("dataset {n}"), file_stem(n)))
        .zip(summary.datasets.values())
        .chain([(
            ("all datasets".to_string(), "overall".to_string()),
            &summary.overall,
        )]);
    for ((title, stem), g) in groups {
        write_plots(&write, &title, &stem, g)?;
    }
    Ok(())
}

fn write_plots(
    write: &impl Fn(&str, &[u8]) -> anyhow::Result<()>,
    title: &str,
    stem: &str,
    g: &GroupSummary,
) -> anyhow::Result<()> {
    if let Some(cm) = &g.confusion {
        let svg = confusion_svg(&format!("Confusion, {title}"), &g.labels, cm)?;
        write(&format!("confusion_{stem}.svg"), svg.as_bytes())?;
    }
    if let (Some(bins), Some(ece)) = (&g.reliability, g.ece) {
        let svg = reliability_svg(&format!("Reliability, {title}"), bins, ece)?;
        write(&format!("reliability_{stem}.svg"), svg.as_bytes())?;
    }
    Ok(())
}

/// The headline numbers, one row per dataset and one overall, as `emomon eval`
/// prints them.
pub fn table(s: &Summary) -> String {
    let mut out = Vec::new();
    write_table(&mut out, s).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("the table is UTF-8")
}

fn write_table(out: &mut impl Write, s: &Summary) -> std::io::Result<()> {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    writeln!(
        out,
        "{:<16} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "dataset", "clips", "accuracy", "uar", "macro_f1", "ece", "js"
    )?;
    let rows = s
        .datasets
        .iter()
        .map(|(n, g)| (n.as_str(), g))
        .chain([("overall", &s.overall)]);
    for (name, g) in rows {
        writeln!(
            out,
            "{:<16} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
            name,
            g.n_items,
            f(g.accuracy),
            f(g.uar),
            f(g.macro_f1),
            f(g.ece),
            f(g.distribution.as_ref().map(|d| d.js_divergence))
        )?;
    }
    Ok(())
}
