//! `emomon eval`: score every clip of a manifest with a model and measure the
//! predictions against the human references, per dataset.
//!
//! The run is resumable: each clip's scores are appended to a cache (by
//! default `OUT/cache.jsonl`) keyed by the audio's SHA-256 and the scoring
//! identity, so an interrupted or repeated run scores only what is missing.
//! Reference labels are mapped to the model's label names explicitly
//! ([`LabelMap`]); labels that still match nothing are reported, not dropped
//! silently. Outputs in `-o DIR`: `predictions.jsonl`, `summary.json`,
//! `summary.md`, and per group (overall, each dataset) `confusion_*.svg` and
//! `reliability_*.svg`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use emomon::eval::cache::{CachedScore, ScoreCache, ScoringIdentity, sha256_hex};
use emomon::eval::crema::read_votes;
use emomon::eval::labels::LabelMap;
use emomon::eval::manifest::{ManifestItem, Reference, crema_items, read_manifest};
use emomon::eval::metrics::argmax;
use emomon::eval::plots::{confusion_svg, reliability_svg};
use emomon::eval::report::{GroupSummary, Prediction, Summary, markdown, summarize_all};
use emomon::model_scorer::{LoadedModel, ModelArgs, open_model};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Manifest CSV: columns `path`, `dataset`, `label` (one label, `a=3;b=1` votes,
    /// or empty), optional `speaker` and `extra` (`arousal=…;valence=…`).
    #[arg(long, required_unless_present = "crema_votes")]
    pub manifest: Option<PathBuf>,
    /// Directory that relative audio paths are under [default: the manifest's directory].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// CREMA-D vote table (`tabulatedVotes.csv` or `voice_only_votes.csv`): its
    /// voice-only crowd votes become reference distributions of dataset `crema-d`.
    #[arg(long, requires = "crema_audio")]
    pub crema_votes: Option<PathBuf>,
    /// CREMA-D's `AudioWAV` directory (`<fileName>.wav` per clip), with --crema-votes.
    #[arg(long)]
    pub crema_audio: Option<PathBuf>,
    /// Only these datasets (comma-separated `dataset` values).
    #[arg(long, value_delimiter = ',')]
    pub datasets: Option<Vec<String>>,
    /// Every K-th clip only (after --datasets), for a quick evaluation of a spread sample.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub stride: u64,
    /// At most N clips (after --datasets and --stride).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Extra reference → model label renames, `from=to,…` (on top of the built-in
    /// anger=angry, happiness=happy, sadness=sad, fearful=fear, …).
    #[arg(long)]
    pub label_map: Option<String>,
    /// Evaluate each dataset over the labels it has (probabilities renormalised over
    /// them), as a classifier restricted to that dataset's label set would be.
    #[arg(long)]
    pub per_dataset_labels: bool,
    /// Score cache (JSON lines) [default: OUT/cache.jsonl].
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Output directory (created if missing).
    #[arg(long, short)]
    pub output: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
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

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let user_map = match &args.label_map {
        Some(spec) => LabelMap::parse_pairs(spec).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
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
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create output directory {}", args.output.display()))?;

    eprintln!(
        "Loading {} …",
        args.model.model.as_deref().unwrap_or("the default model")
    );
    let model = open_model(&args.model)?;
    let model_labels = model.labels().to_vec();
    let plan = LabelPlan::new(
        &in_datasets,
        &selected,
        &model_labels,
        LabelMap::new(&user_map),
        args.per_dataset_labels,
    );
    for (dataset, labels) in &plan.unmapped {
        let list: Vec<String> = labels.iter().map(|(l, n)| format!("{l} ({n})")).collect();
        eprintln!(
            "note: {dataset}: reference labels the model does not output (left out of the \
             categorical metrics; map them with --label-map): {}",
            list.join(", ")
        );
    }

    let identity = ScoringIdentity {
        model: model.id().to_string(),
        method: model.method().as_str().to_string(),
        labels: model_labels.clone(),
        prompt: args.model.prompt.clone(),
        temperature: args.model.temperature,
        options: vec![
            format!("max_new_tokens={}", args.model.max_new_tokens),
            format!("pad={}", !args.model.no_pad),
            format!("quant={:?}", args.model.quant),
        ],
    };
    let cache_path = args
        .cache
        .clone()
        .unwrap_or_else(|| args.output.join("cache.jsonl"));
    let mut cache = ScoreCache::open(&cache_path)?;
    if cache.skipped_lines > 0 {
        eprintln!(
            "note: {} unreadable line(s) in {} ignored (an interrupted write?)",
            cache.skipped_lines,
            cache_path.display()
        );
    }

    let outcomes = score_all(&model, &identity, &selected, &mut cache)?;
    let cache_hits = outcomes.iter().filter(|o| o.cached).count();
    let scored = outcomes
        .iter()
        .filter(|o| !o.cached && o.score.is_some())
        .count();
    let predictions: Vec<Prediction> = selected
        .iter()
        .zip(outcomes)
        .map(|(item, outcome)| predict(item, outcome, &identity, &plan))
        .collect();
    let failed = predictions.iter().filter(|p| p.probs.is_none()).count();
    if failed == predictions.len() {
        let first = predictions[0].error.as_deref().unwrap_or("unknown error");
        bail!(
            "none of the {} clip(s) could be scored; the first ({}): {first}",
            predictions.len(),
            predictions[0].path
        );
    }

    let (overall, datasets) =
        summarize_all(&predictions, &model_labels).context("computing the metrics")?;
    let summary = Summary {
        model: identity.model.clone(),
        method: identity.method.clone(),
        labels: model_labels,
        per_dataset_labels: args.per_dataset_labels,
        n_items: predictions.len(),
        cache_hits,
        scored,
        failed,
        overall,
        datasets,
        label_renames: plan.renames,
        unmapped_labels: plan.unmapped,
        labels_never_referenced: plan.never_referenced,
    };
    write_outputs(&args.output, &predictions, &summary)?;
    print_table(&summary)?;
    eprintln!(
        "{} clip(s): {cache_hits} from the cache, {scored} scored, {failed} failed; wrote {}",
        summary.n_items,
        args.output.display()
    );
    Ok(())
}

/// One clip's scores, from the cache or the model.
struct Outcome {
    audio_sha256: String,
    score: Option<CachedScore>,
    cached: bool,
    error: Option<String>,
}

/// Reads, hashes and (unless cached) scores every clip, in batches of the
/// model's natural size, with a progress bar. Unreadable audio and model
/// failures are recorded per clip, so one bad file does not end a long run.
fn score_all(
    model: &LoadedModel,
    identity: &ScoringIdentity,
    items: &[&ManifestItem],
    cache: &mut ScoreCache,
) -> anyhow::Result<Vec<Outcome>> {
    let bar = ProgressBar::new(items.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>8} [{bar:30}] {pos}/{len} clips, {elapsed} elapsed, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message("scoring");
    let mut outcomes = Vec::with_capacity(items.len());
    let batch_size = model.natural_batch().max(1);
    let mut pending: Vec<(usize, Vec<f32>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut outcome = Outcome {
            audio_sha256: String::new(),
            score: None,
            cached: false,
            error: None,
        };
        match std::fs::read(&item.audio) {
            Err(e) => {
                outcome.error = Some(format!(
                    "cannot read {} (line {} of the manifest or vote table): {e}",
                    item.audio.display(),
                    item.line
                ));
                bar.inc(1);
            }
            Ok(bytes) => {
                outcome.audio_sha256 = sha256_hex(&bytes);
                let key = identity.key(&outcome.audio_sha256);
                if let Some(hit) = cache.get(&key) {
                    outcome.score = Some(hit.clone());
                    outcome.cached = true;
                    bar.inc(1);
                } else {
                    match decode_16k(&item.audio) {
                        Ok(samples) => pending.push((i, samples)),
                        Err(e) => {
                            outcome.error = Some(format!(
                                "{e:#} (line {} of the manifest or vote table)",
                                item.line
                            ));
                            bar.inc(1);
                        }
                    }
                }
            }
        }
        outcomes.push(outcome);
        if pending.len() >= batch_size || (i + 1 == items.len() && !pending.is_empty()) {
            let n = pending.len() as u64;
            score_batch(model, identity, items, &mut pending, &mut outcomes, cache)?;
            bar.inc(n);
        }
    }
    bar.finish_and_clear();
    Ok(outcomes)
}

/// Scores the pending clips and records each result (and caches it).
fn score_batch(
    model: &LoadedModel,
    identity: &ScoringIdentity,
    items: &[&ManifestItem],
    pending: &mut Vec<(usize, Vec<f32>)>,
    outcomes: &mut [Outcome],
    cache: &mut ScoreCache,
) -> anyhow::Result<()> {
    let audio: Vec<&[f32]> = pending.iter().map(|(_, s)| s.as_slice()).collect();
    match model.score(&audio) {
        Ok(batch) => {
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
                    probs,
                    logits,
                    generated: result.generated,
                    error,
                };
                cache.insert(entry.clone())?;
                outcome.score = Some(entry);
            }
        }
        Err(e) => {
            for (i, _) in pending.iter() {
                outcomes[*i].error = Some(format!(
                    "scoring failed: {e:#} (line {} of the manifest or vote table)",
                    items[*i].line
                ));
            }
        }
    }
    pending.clear();
    Ok(())
}

/// The whole file, downmixed and resampled to 16 kHz mono.
fn decode_16k(path: &Path) -> anyhow::Result<Vec<f32>> {
    let samples = super::score::read_16k(path)?;
    if samples.is_empty() {
        bail!("{} has no audio", path.display());
    }
    Ok(samples)
}

/// A clip's prediction record: the model's distribution (restricted to the
/// dataset's labels if asked) beside its mapped reference.
fn predict(
    item: &ManifestItem,
    outcome: Outcome,
    identity: &ScoringIdentity,
    plan: &LabelPlan,
) -> Prediction {
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
    Prediction {
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
    }
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

fn write_outputs(dir: &Path, predictions: &[Prediction], summary: &Summary) -> anyhow::Result<()> {
    let write = |name: &str, content: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))
    };
    let mut jsonl = Vec::new();
    for p in predictions {
        serde_json::to_writer(&mut jsonl, p)?;
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
        let svg = confusion_svg(&format!("Confusion, {title}"), &g.labels, cm);
        write(&format!("confusion_{stem}.svg"), svg.as_bytes())?;
    }
    if let (Some(bins), Some(ece)) = (&g.reliability, g.ece) {
        let svg = reliability_svg(&format!("Reliability, {title}"), bins, ece);
        write(&format!("reliability_{stem}.svg"), svg.as_bytes())?;
    }
    Ok(())
}

/// The headline numbers on stdout.
fn print_table(s: &Summary) -> anyhow::Result<()> {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
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
