//! Per-clip predictions → per-dataset metrics, and the written report
//! (`summary.json`, `summary.md`).
//!
//! Metrics are computed from [`Prediction`] records only (what
//! `predictions.jsonl` holds), so a summary can always be recomputed from a
//! predictions file without the model or the audio.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::metrics::{
    self, Calibration, DEFAULT_ECE_BINS, DistributionMetrics, MetricsError, ReliabilityBin,
};

/// One scored clip, as written to `predictions.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The manifest's `path`.
    pub path: String,
    /// The manifest's `dataset`.
    pub dataset: String,
    /// The manifest's `speaker`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub speaker: String,
    /// Reference label, mapped to the model's label names (`None` when the
    /// manifest gave a distribution or nothing).
    pub label: Option<String>,
    /// Reference label as written in the manifest, when it was renamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_raw: Option<String>,
    /// Reference vote distribution over `labels` (normalised; votes for labels
    /// outside `labels` dropped), when the manifest gave votes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Vec<f64>>,
    /// Dimensional annotation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arousal: Option<f64>,
    /// Dimensional annotation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valence: Option<f64>,
    /// Labels evaluated for this clip, in the order of `probs`.
    pub labels: Vec<String>,
    /// Predicted distribution over `labels` (sums to 1); `None` when the clip
    /// could not be scored (see `error`).
    pub probs: Option<Vec<f64>>,
    /// The most probable label.
    pub top: Option<String>,
    /// The model's full distribution over all its labels, when `probs` was
    /// restricted to the dataset's labels (`--per-dataset-labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_probs: Option<Vec<f64>>,
    /// Scoring method.
    pub method: String,
    /// Model id.
    pub model: String,
    /// SHA-256 of the audio file (empty if it could not be read).
    pub audio_sha256: String,
    /// Whether the scores came from the cache.
    pub cached: bool,
    /// Why the clip has no prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Per-class precision, recall and F1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    /// The label.
    pub label: String,
    /// Reference items of this label.
    pub support: u64,
    /// `None` when never predicted.
    pub precision: Option<f64>,
    /// `None` when absent from the reference.
    pub recall: Option<f64>,
    /// `None` when in neither.
    pub f1: Option<f64>,
}

/// Metrics of one group of clips (one dataset, or all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Clips in the group.
    pub n_items: usize,
    /// Clips that could not be scored (unreadable audio or answer).
    pub n_failed: usize,
    /// Clips in the categorical metrics (a reference label among `labels`).
    pub n_categorical: usize,
    /// Clips in the distribution metrics (a reference distribution).
    pub n_distribution: usize,
    /// Clips without any categorical reference.
    pub n_without_reference: usize,
    /// Clips whose reference label is not among `labels` (see `unmapped_labels`
    /// in the summary); left out of the categorical metrics.
    pub n_unmapped: usize,
    /// Clips whose reference distribution has a tie for the top label; they
    /// have no single reference label, so they count in the distribution
    /// metrics only.
    pub n_tied: usize,
    /// Labels evaluated, in the order of the confusion matrix.
    pub labels: Vec<String>,
    /// See [`metrics::accuracy`].
    pub accuracy: Option<f64>,
    /// See [`metrics::macro_f1`].
    pub macro_f1: Option<f64>,
    /// See [`metrics::unweighted_average_recall`].
    pub uar: Option<f64>,
    /// See [`metrics::calibration`] (10 bins).
    pub ece: Option<f64>,
    /// Per label.
    pub per_class: Vec<ClassReport>,
    /// Rows reference, columns predicted, in `labels` order.
    pub confusion: Option<Vec<Vec<u64>>>,
    /// Reliability-diagram bins of top-label confidence.
    pub reliability: Option<Vec<ReliabilityBin>>,
    /// Against reference distributions (see [`metrics::distribution_metrics`]).
    pub distribution: Option<DistributionMetrics>,
}

/// `probs` over `from` re-indexed onto `to` (labels missing from `from` get 0).
fn embed(from: &[String], probs: &[f64], to: &[String]) -> Vec<f64> {
    to.iter()
        .map(|l| from.iter().position(|f| f == l).map_or(0.0, |i| probs[i]))
        .collect()
}

/// The index of the single largest value, `None` on a tie for the top.
fn unique_argmax(p: &[f64]) -> Option<usize> {
    let top = metrics::argmax(p);
    let ties = p.iter().filter(|&&x| x == p[top]).count();
    (ties == 1).then_some(top)
}

/// Metrics over `preds`. The group's labels are those any clip was evaluated
/// on, in `order` (the model's label order); each clip's distribution is
/// placed on them with 0 for labels it was not asked about, which leaves its
/// argmax and top confidence unchanged.
pub fn summarize_group(
    preds: &[&Prediction],
    order: &[String],
) -> Result<GroupSummary, MetricsError> {
    let labels: Vec<String> = order
        .iter()
        .filter(|l| preds.iter().any(|p| p.labels.contains(l)))
        .cloned()
        .collect();
    let (mut n_failed, mut n_without, mut n_unmapped, mut n_tied) = (0, 0, 0, 0);
    let (mut y_true, mut y_pred, mut cal_probs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut refs, mut dists) = (Vec::new(), Vec::new());
    for p in preds {
        let Some(probs) = &p.probs else {
            n_failed += 1;
            continue;
        };
        let q = embed(&p.labels, probs, &labels);
        let class = if let Some(l) = &p.label {
            let c = labels.iter().position(|x| x == l);
            if c.is_none() {
                n_unmapped += 1;
            }
            c
        } else if let Some(r) = &p.reference {
            let r = embed(&p.labels, r, &labels);
            let c = unique_argmax(&r);
            if c.is_none() {
                n_tied += 1;
            }
            refs.push(r);
            dists.push(q.clone());
            c
        } else {
            n_without += 1;
            None
        };
        if let Some(c) = class {
            y_true.push(c);
            y_pred.push(metrics::argmax(&q));
            cal_probs.push(q);
        }
    }
    let k = labels.len();
    let categorical = if y_true.is_empty() {
        None
    } else {
        Some(metrics::categorical_metrics(&y_true, &y_pred, k)?)
    };
    let calibration: Option<Calibration> = if y_true.is_empty() {
        None
    } else {
        Some(metrics::calibration(&cal_probs, &y_true, DEFAULT_ECE_BINS)?)
    };
    let distribution = if refs.is_empty() {
        None
    } else {
        Some(metrics::distribution_metrics(&refs, &dists)?)
    };
    let per_class: Vec<ClassReport> = categorical
        .as_ref()
        .map(|c| {
            c.per_class
                .iter()
                .zip(&labels)
                .map(|(s, l)| ClassReport {
                    label: l.clone(),
                    support: s.support,
                    precision: s.precision,
                    recall: s.recall,
                    f1: s.f1,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(GroupSummary {
        n_items: preds.len(),
        n_failed,
        n_categorical: y_true.len(),
        n_distribution: refs.len(),
        n_without_reference: n_without,
        n_unmapped,
        n_tied,
        labels,
        accuracy: categorical.as_ref().map(|c| c.accuracy),
        macro_f1: categorical.as_ref().map(|c| c.macro_f1),
        uar: categorical.as_ref().map(|c| c.uar),
        ece: calibration.as_ref().map(|c| c.ece),
        per_class,
        confusion: categorical.map(|c| c.confusion),
        reliability: calibration.map(|c| c.bins),
        distribution,
    })
}

/// The whole `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Model id.
    pub model: String,
    /// Scoring method.
    pub method: String,
    /// The model's labels.
    pub labels: Vec<String>,
    /// Whether each dataset's clips were evaluated over that dataset's labels only.
    pub per_dataset_labels: bool,
    /// Clips evaluated.
    pub n_items: usize,
    /// Clips whose scores came from the cache.
    pub cache_hits: usize,
    /// Clips scored by the model in this run.
    pub scored: usize,
    /// Clips that could not be scored.
    pub failed: usize,
    /// All clips.
    pub overall: GroupSummary,
    /// Per dataset.
    pub datasets: BTreeMap<String, GroupSummary>,
    /// Reference label renames applied (as written → model label).
    pub label_renames: BTreeMap<String, String>,
    /// Per dataset, reference labels the model does not output, with their
    /// number of clips (single labels) or of clips with votes for them.
    pub unmapped_labels: BTreeMap<String, BTreeMap<String, usize>>,
    /// Model labels that no clip's reference uses.
    pub labels_never_referenced: Vec<String>,
}

/// Overall and per-dataset summaries of `preds`.
pub fn summarize_all(
    preds: &[Prediction],
    order: &[String],
) -> Result<(GroupSummary, BTreeMap<String, GroupSummary>), MetricsError> {
    let all: Vec<&Prediction> = preds.iter().collect();
    let overall = summarize_group(&all, order)?;
    let mut by_dataset: BTreeMap<&str, Vec<&Prediction>> = BTreeMap::new();
    for p in preds {
        by_dataset.entry(&p.dataset).or_default().push(p);
    }
    let mut datasets = BTreeMap::new();
    for (name, group) in by_dataset {
        datasets.insert(name.to_string(), summarize_group(&group, order)?);
    }
    Ok((overall, datasets))
}

fn num(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

/// `summary.md`: a table per dataset, per-class scores, confusion matrices and
/// the label-mapping report.
pub fn markdown(s: &Summary) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# emomon eval\n");
    let _ = writeln!(
        md,
        "Model `{}`, method `{}`, labels {}{}.\n\n{} clip(s): {} from the cache, {} scored now, {} failed.\n",
        s.model,
        s.method,
        s.labels.join(", "),
        if s.per_dataset_labels {
            " (each dataset evaluated over its own labels: probabilities renormalised over them)"
        } else {
            ""
        },
        s.n_items,
        s.cache_hits,
        s.scored,
        s.failed
    );
    let _ = writeln!(
        md,
        "| dataset | clips | labelled | accuracy | UAR | macro-F1 | ECE | JS | KL | BC | R² |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let groups = s
        .datasets
        .iter()
        .map(|(n, g)| (n.as_str(), g))
        .chain([("**overall**", &s.overall)]);
    for (name, g) in groups.clone() {
        let d = g.distribution.as_ref();
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            g.n_items,
            g.n_categorical,
            num(g.accuracy),
            num(g.uar),
            num(g.macro_f1),
            num(g.ece),
            num(d.map(|d| d.js_divergence)),
            num(d.map(|d| d.kl_divergence)),
            num(d.map(|d| d.bhattacharyya)),
            num(d.and_then(|d| d.r2)),
        );
    }
    let _ = writeln!(
        md,
        "\nJS, KL (reference ‖ predicted, nats) and BC (Bhattacharyya coefficient) are item means \
         against reference vote distributions; – where a dataset has none.\n"
    );
    for (name, g) in groups {
        if g.confusion.is_none() {
            continue;
        }
        let _ = writeln!(md, "## {name}\n");
        let _ = writeln!(md, "| label | support | precision | recall | F1 |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        for c in &g.per_class {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                c.label,
                c.support,
                num(c.precision),
                num(c.recall),
                num(c.f1)
            );
        }
        if let Some(cm) = &g.confusion {
            let _ = writeln!(md, "\nConfusion (rows reference, columns predicted):\n");
            let _ = writeln!(md, "| reference \\ predicted | {} |", g.labels.join(" | "));
            let _ = writeln!(md, "|---|{}", "---:|".repeat(g.labels.len()));
            for (l, row) in g.labels.iter().zip(cm) {
                let cells: Vec<String> = row.iter().map(u64::to_string).collect();
                let _ = writeln!(md, "| {l} | {} |", cells.join(" | "));
            }
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "## Labels\n");
    if s.label_renames.is_empty() {
        let _ = writeln!(md, "No reference label was renamed.");
    } else {
        let renames: Vec<String> = s
            .label_renames
            .iter()
            .map(|(a, b)| format!("{a} → {b}"))
            .collect();
        let _ = writeln!(md, "Renamed: {}.", renames.join(", "));
    }
    for (dataset, labels) in &s.unmapped_labels {
        let list: Vec<String> = labels.iter().map(|(l, n)| format!("{l} ({n})")).collect();
        let _ = writeln!(
            md,
            "\n{dataset}: reference labels the model does not output, left out of the categorical \
             metrics: {}.",
            list.join(", ")
        );
    }
    if !s.labels_never_referenced.is_empty() {
        let _ = writeln!(
            md,
            "\nModel labels no reference uses: {}.",
            s.labels_never_referenced.join(", ")
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    fn pred(dataset: &str, label: Option<&str>, labels_: &[&str], probs: &[f64]) -> Prediction {
        Prediction {
            path: "x.wav".into(),
            dataset: dataset.into(),
            speaker: String::new(),
            label: label.map(str::to_string),
            label_raw: None,
            reference: None,
            arousal: None,
            valence: None,
            labels: labels(labels_),
            probs: Some(probs.to_vec()),
            top: None,
            model_probs: None,
            method: "first-token".into(),
            model: "m".into(),
            audio_sha256: String::new(),
            cached: false,
            error: None,
        }
    }

    #[test]
    fn groups_mix_label_sets_and_reference_kinds() {
        let order = labels(&["a", "b", "c"]);
        let mut tied = pred("votes", None, &["a", "b", "c"], &[0.2, 0.3, 0.5]);
        tied.reference = Some(vec![0.5, 0.5, 0.0]);
        let mut voted = pred("votes", None, &["a", "b", "c"], &[0.2, 0.3, 0.5]);
        voted.reference = Some(vec![0.0, 0.25, 0.75]);
        let mut failed = pred("one", Some("a"), &["a", "b"], &[0.5, 0.5]);
        failed.probs = None;
        let preds = vec![
            pred("one", Some("a"), &["a", "b"], &[0.9, 0.1]),
            pred("one", Some("b"), &["a", "b"], &[0.6, 0.4]),
            pred("one", Some("z"), &["a", "b"], &[0.6, 0.4]),
            pred("one", None, &["a", "b"], &[0.6, 0.4]),
            failed,
            tied,
            voted,
        ];
        let (overall, datasets) = summarize_all(&preds, &order).unwrap();
        let one = &datasets["one"];
        assert_eq!(one.labels, labels(&["a", "b"]));
        assert_eq!(
            (
                one.n_items,
                one.n_failed,
                one.n_categorical,
                one.n_unmapped,
                one.n_without_reference
            ),
            (5, 1, 2, 1, 1)
        );
        assert_eq!(one.accuracy, Some(0.5));
        assert_eq!(one.confusion, Some(vec![vec![1, 0], vec![1, 0]]));
        assert_eq!(one.per_class[1].recall, Some(0.0));
        assert!(one.distribution.is_none());
        let votes = &datasets["votes"];
        assert_eq!(
            (votes.n_distribution, votes.n_tied, votes.n_categorical),
            (2, 1, 1)
        );
        assert_eq!(votes.accuracy, Some(1.0));
        let d = votes.distribution.as_ref().unwrap();
        let bc = ((0.5f64 * 0.2).sqrt()
            + (0.5f64 * 0.3).sqrt()
            + (0.25f64 * 0.3).sqrt()
            + (0.75f64 * 0.5).sqrt())
            / 2.0;
        assert!((d.bhattacharyya - bc).abs() < 1e-12);
        assert_eq!(overall.labels, order);
        assert_eq!(overall.n_categorical, 3);
        assert!((overall.accuracy.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // ECE over the 3 labelled clips: confidences 0.9 (hit), 0.6 (miss), 0.5 (hit).
        let ece = (0.1 + 0.6 + 0.5) / 3.0;
        assert!(
            (overall.ece.unwrap() - ece).abs() < 1e-12,
            "{:?}",
            overall.ece
        );
    }
}
