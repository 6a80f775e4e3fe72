//! From scores to results: each clip's prediction against its reference, the metrics,
//! and the files in `-o DIR` (predictions, summaries, plots, the printed table).

use super::*;

/// Metrics and outputs of one method × strategy into `dir`.
pub(super) fn evaluate(
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

/// What `predictions.jsonl` adds to a [`Prediction`]: the answers behind an
/// ensemble's distribution (over the model's labels, in `summary.json`'s `labels`
/// order) so anyone can re-aggregate them, and the model time.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Extras {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) aggregate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) members: Option<Vec<MemberScore>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) unparseable: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) latency_ms: Option<f64>,
}

pub(super) fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One line of `predictions.jsonl`.
#[derive(Serialize)]
pub(super) struct Record<'a> {
    #[serde(flatten)]
    pub(super) prediction: &'a Prediction,
    #[serde(flatten)]
    pub(super) extras: &'a Extras,
}

/// A clip's prediction record: the model's distribution (restricted to the
/// dataset's labels if asked) beside its mapped reference.
pub(super) fn predict(
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
                                .map_or(0.0, |k| full[k].powf(outcome.subset_exponent))
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
pub(super) fn file_stem(name: &str) -> String {
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

pub(super) fn write_outputs(
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

pub(super) fn write_plots(
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

pub(super) fn write_table(out: &mut impl Write, s: &Summary) -> std::io::Result<()> {
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
