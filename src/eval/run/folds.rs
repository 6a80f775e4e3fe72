//! `emomon eval --folds DIR`: speaker-independent cross-validation of the default model.
//!
//! Evaluating the shipped adapter on the shared clips would measure it on its own
//! training data. `scripts/default_model/train.py --export-folds DIR` writes, for each
//! speaker-independent fold K, the adapter trained without that fold and the list of
//! clips it held out (`DIR/fold-K/heldout.csv`, manifest `path`s). Here every selected
//! clip is scored by the adapter that never saw its speaker, and the predictions of all
//! folds are pooled into one summary — the same outputs as a plain `eval`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::eval::cache::ScoringIdentity;
use crate::eval::labels::LabelMap;
use crate::eval::manifest::{ManifestItem, read_manifest};
use crate::model_scorer::open_model;
use anyhow::{Context, bail};

use emomon_models::default_model::DEFAULT_MODEL_NAME;
use emomon_models::scorer::Method;

use super::{
    EvalOptions, EvalReport, Job, LabelPlan, Outcome, evaluate, identity_options, open_cache,
    read_items, score_all, select, set_subset_exponents, user_label_map,
};

/// One fold: its adapter directory and the manifest paths it held out.
struct Fold {
    name: String,
    dir: PathBuf,
    held_out: Vec<String>,
}

pub(super) fn run(args: &EvalOptions, dir: &Path) -> anyhow::Result<EvalReport> {
    if args.model.model.is_some() || args.model.adapter.is_some() {
        bail!(
            "--folds scores with each fold's adapter on the default model's base; drop --model/--adapter"
        );
    }
    if args.model.method != Method::FirstToken || !args.model.prompt.is_empty() {
        bail!("--folds evaluates the default model, which scores first-token with its own prompt");
    }
    let folds = read_folds(dir)?;
    let user_map = user_label_map(args)?;
    let (items, source) = read_items(args)?;
    let (in_datasets, selected) = select(args, &items, &source)?;

    let fold_of: BTreeMap<&str, usize> = folds
        .iter()
        .enumerate()
        .flat_map(|(k, f)| f.held_out.iter().map(move |p| (p.as_str(), k)))
        .collect();
    let (scored, outside): (Vec<&ManifestItem>, Vec<&ManifestItem>) = selected
        .iter()
        .partition(|item| fold_of.contains_key(item.path.as_str()));
    if !outside.is_empty() {
        eprintln!(
            "note: {} selected clip(s) are in no fold's heldout.csv and are not scored (e.g. {})",
            outside.len(),
            outside[0].path
        );
    }
    if scored.is_empty() {
        bail!(
            "none of the selected clips of {source} is held out by a fold in {} (do the \
             heldout.csv paths match the manifest's `path` column?)",
            dir.display()
        );
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create output directory {}", args.output.display()))?;
    let mut cache = open_cache(args)?;

    let mut outcomes: Vec<Option<Outcome>> = scored.iter().map(|_| None).collect();
    // The labels every fold's adapter must share, and the plan over them (made when the
    // first adapter is open).
    let mut shared: Option<(Vec<String>, LabelPlan)> = None;
    for (k, fold) in folds.iter().enumerate() {
        let idx: Vec<usize> = (0..scored.len())
            .filter(|&i| fold_of[scored[i].path.as_str()] == k)
            .collect();
        if idx.is_empty() {
            continue;
        }
        eprintln!(
            "{}: {} held-out clip(s), adapter {}",
            fold.name,
            idx.len(),
            fold.dir.display()
        );
        let mut open_args = args.model.clone();
        open_args.adapter = Some(fold.dir.clone());
        let model = open_model(&open_args)?;
        let (labels, plan) = shared.get_or_insert_with(|| {
            let labels = model.labels().to_vec();
            let plan = LabelPlan::new(
                &in_datasets,
                &scored,
                &labels,
                LabelMap::new(&user_map),
                args.per_dataset_labels,
            );
            (labels, plan)
        });
        if labels.as_slice() != model.labels() {
            bail!(
                "{}: its adapter's labels ({}) differ from the other folds' ({})",
                fold.name,
                model.labels().join(", "),
                labels.join(", ")
            );
        }
        let identity = ScoringIdentity {
            model: model.id().to_string(),
            method: Method::FirstToken.as_str().to_string(),
            labels: model.labels().to_vec(),
            prompt: None,
            temperature: args.model.temperature,
            options: identity_options(args),
            ensemble: None,
        };
        let job = Job {
            model: &model,
            method: Method::FirstToken,
            questions: model.questions_for(Method::FirstToken, &[]),
            sampling: None,
            strategies: vec![None],
            identities: vec![identity],
        };
        let fold_items: Vec<&ManifestItem> = idx.iter().map(|&i| scored[i]).collect();
        let mut per_clip = score_all(&job, &fold_items, &mut cache, args.workers)?
            .into_iter()
            .next()
            .unwrap_or_default();
        // Each fold's adapter has its own temperatures per label set.
        set_subset_exponents(&mut per_clip, &fold_items, &plan.subset_exponents(&model));
        for (&i, outcome) in idx.iter().zip(per_clip) {
            outcomes[i] = Some(outcome);
        }
    }
    let Some((labels, plan)) = shared else {
        bail!("no fold in {} holds out a selected clip", dir.display());
    };
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(Outcome::new))
        .collect();
    plan.print_unmapped();
    let pooled = ScoringIdentity {
        model: format!(
            "{DEFAULT_MODEL_NAME}, speaker-independent {}-fold CV ({})",
            folds.len(),
            dir.display()
        ),
        method: Method::FirstToken.as_str().to_string(),
        labels,
        prompt: None,
        temperature: args.model.temperature,
        options: identity_options(args),
        ensemble: None,
    };
    let summary = evaluate(
        args,
        &args.output,
        &scored,
        outcomes,
        &pooled,
        &plan,
        "speaker-independent CV",
    )?;
    eprintln!(
        "{} clip(s) over {} folds: {} from the cache, {} scored, {} failed; wrote {}",
        summary.n_items,
        folds.len(),
        summary.cache_hits,
        summary.scored,
        summary.failed,
        args.output.display()
    );
    Ok(EvalReport::Single(Box::new(summary)))
}

/// The `fold-*` directories of `dir`, in name order, each with its held-out paths; a
/// clip held out by two folds is an error (the folds would not be a partition).
fn read_folds(dir: &Path) -> anyhow::Result<Vec<Fold>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("--folds: cannot read the directory {}", dir.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("fold-"))
        })
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "--folds: {} has no fold-K directories (write them with \
             scripts/default_model/train.py --export-folds {})",
            dir.display(),
            dir.display()
        );
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut folds = Vec::new();
    for d in dirs {
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let held_out = read_heldout(&d.join("heldout.csv"))?;
        for p in &held_out {
            if let Some(other) = seen.insert(p.clone(), name.clone()) {
                bail!("--folds: {p} is held out by both {other} and {name}");
            }
        }
        folds.push(Fold {
            name,
            dir: d,
            held_out,
        });
    }
    Ok(folds)
}

/// The `path` column of a fold's `heldout.csv` (a manifest of the held-out clips).
fn read_heldout(path: &Path) -> anyhow::Result<Vec<String>> {
    let rows = read_manifest(path, None).with_context(|| format!("--folds: {}", path.display()))?;
    Ok(rows.into_iter().map(|r| r.path).collect())
}
