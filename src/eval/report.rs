//! Per-clip predictions → per-dataset metrics, and the written report
//! (`summary.json`, `summary.md`).
//!
//! Metrics are computed from [`Prediction`] records only (what
//! `predictions.jsonl` holds), so a summary can always be recomputed from a
//! predictions file without the model or the audio. That includes the
//! valence/arousal projection ([`DimensionalSummary`]), which uses the
//! built-in coordinates of [`super::circumplex`] and each clip's `labels` and
//! `probs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::circumplex;
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
    /// Valence/arousal projection against dimensional annotations (`None`
    /// when no scored clip has any).
    #[serde(default)]
    pub dimensional: Option<DimensionalSummary>,
}

/// Agreement of one projected dimension with the annotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correlations {
    /// Clips with both a projection and an annotation of this dimension.
    pub n_items: usize,
    /// See [`metrics::pearson`]; `None` with fewer than 2 clips or constant input.
    pub pearson: Option<f64>,
    /// See [`metrics::spearman`]; likewise.
    pub spearman: Option<f64>,
    /// Lin's concordance correlation coefficient ([`metrics::concordance`]);
    /// `None` with fewer than 2 clips or when undefined.
    pub ccc: Option<f64>,
}

/// Each clip's distribution projected onto valence and arousal (expected
/// coordinate, [`circumplex::project`]) and correlated with the clip's
/// `valence`/`arousal` annotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionalSummary {
    /// Scored clips with a valence or arousal annotation.
    pub n_items: usize,
    /// Of those, clips whose probability all fell on labels without
    /// coordinates (nothing to project; left out).
    pub n_unprojectable: usize,
    /// Projected valence against annotated valence.
    pub valence: Option<Correlations>,
    /// Projected arousal against annotated arousal.
    pub arousal: Option<Correlations>,
    /// Evaluated labels with no coordinates in the built-in table: their
    /// probability is left out and the rest renormalised, never guessed.
    pub labels_without_coordinates: Vec<String>,
    /// Mean probability those labels took over the projected clips.
    pub mean_mass_without_coordinates: f64,
    /// Where the coordinates come from ([`circumplex::SOURCE`]).
    pub coordinates_source: String,
}

fn correlations(pairs: &[(f64, f64)]) -> Option<Correlations> {
    if pairs.is_empty() {
        return None;
    }
    let (x, y): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let defined = |r: Result<f64, MetricsError>| r.ok().filter(|_| pairs.len() >= 2);
    Some(Correlations {
        n_items: pairs.len(),
        pearson: defined(metrics::pearson(&x, &y)),
        spearman: defined(metrics::spearman(&x, &y)),
        ccc: defined(metrics::concordance(&x, &y)),
    })
}

/// The valence/arousal projection of the scored clips that carry a
/// dimensional annotation, against that annotation.
pub fn dimensional_summary(preds: &[&Prediction], labels: &[String]) -> Option<DimensionalSummary> {
    let (mut n, mut unprojectable, mut missing_mass) = (0, 0, 0.0);
    let (mut valence, mut arousal) = (Vec::new(), Vec::new());
    for p in preds {
        let Some(probs) = &p.probs else { continue };
        if p.valence.is_none() && p.arousal.is_none() {
            continue;
        }
        n += 1;
        let Some(proj) = circumplex::project(&p.labels, probs) else {
            unprojectable += 1;
            continue;
        };
        missing_mass += proj.mass_without_coordinates;
        if let Some(v) = p.valence {
            valence.push((proj.valence, v));
        }
        if let Some(a) = p.arousal {
            arousal.push((proj.arousal, a));
        }
    }
    if n == 0 {
        return None;
    }
    let projected = n - unprojectable;
    Some(DimensionalSummary {
        n_items: n,
        n_unprojectable: unprojectable,
        valence: correlations(&valence),
        arousal: correlations(&arousal),
        labels_without_coordinates: labels
            .iter()
            .filter(|l| circumplex::coordinates(l).is_none())
            .cloned()
            .collect(),
        mean_mass_without_coordinates: if projected > 0 {
            missing_mass / projected as f64
        } else {
            0.0
        },
        coordinates_source: circumplex::SOURCE.to_string(),
    })
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
    let dimensional = dimensional_summary(preds, &labels);
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
        dimensional,
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
            " (each dataset evaluated over its own labels: probabilities renormalised over them, at the \
             model's temperature for that label set where it has one)"
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
    if groups.clone().any(|(_, g)| g.dimensional.is_some()) {
        dimensional_markdown(&mut md, groups.clone());
    }
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

/// The valence/arousal table of `summary.md`.
fn dimensional_markdown<'a>(
    md: &mut String,
    groups: impl Iterator<Item = (&'a str, &'a GroupSummary)>,
) {
    let _ = writeln!(md, "## Valence / arousal\n");
    let _ = writeln!(
        md,
        "| dataset | clips | valence r | valence ρ | valence CCC | arousal r | arousal ρ | arousal CCC |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut notes = Vec::new();
    let mut source = None;
    for (name, g) in groups {
        let Some(d) = &g.dimensional else { continue };
        let (v, a) = (d.valence.as_ref(), d.arousal.as_ref());
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            d.n_items - d.n_unprojectable,
            num(v.and_then(|c| c.pearson)),
            num(v.and_then(|c| c.spearman)),
            num(v.and_then(|c| c.ccc)),
            num(a.and_then(|c| c.pearson)),
            num(a.and_then(|c| c.spearman)),
            num(a.and_then(|c| c.ccc)),
        );
        if !d.labels_without_coordinates.is_empty() {
            notes.push(format!(
                "{name}: labels without coordinates, left out of the projection: {} (mean \
                 probability {:.3}).",
                d.labels_without_coordinates.join(", "),
                d.mean_mass_without_coordinates
            ));
        }
        if d.n_unprojectable > 0 {
            notes.push(format!(
                "{name}: {} clip(s) put all probability on such labels and are left out.",
                d.n_unprojectable
            ));
        }
        source.get_or_insert_with(|| d.coordinates_source.clone());
    }
    let _ = writeln!(
        md,
        "\nEach distribution is projected onto valence and arousal as the expected coordinate \
         of its labels (Pearson r, Spearman ρ and Lin's CCC against the annotation). \
         Coordinates: {}.\n",
        source.unwrap_or_default()
    );
    for n in notes {
        let _ = writeln!(md, "{n}\n");
    }
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
    fn valence_arousal_projection_per_group() {
        let l = ["happy", "sad", "other"];
        let dim = |probs: &[f64], v: Option<f64>, a: Option<f64>| {
            let mut p = pred("dim", None, &l, probs);
            p.valence = v;
            p.arousal = a;
            p
        };
        let mut failed = dim(&[1.0, 0.0, 0.0], Some(0.1), None);
        failed.probs = None;
        let preds = vec![
            dim(&[1.0, 0.0, 0.0], Some(0.8), Some(0.5)),
            dim(&[0.0, 1.0, 0.0], Some(-0.6), Some(-0.2)),
            dim(&[0.25, 0.25, 0.5], Some(0.0), None),
            dim(&[0.0, 0.0, 1.0], Some(0.3), Some(0.3)),
            dim(&[0.5, 0.5, 0.0], None, None),
            failed,
            pred("cat", Some("happy"), &l, &[0.9, 0.1, 0.0]),
        ];
        let (overall, datasets) = summarize_all(&preds, &labels(&l)).unwrap();
        assert!(datasets["cat"].dimensional.is_none());
        let d = datasets["dim"].dimensional.as_ref().expect("dimensional");
        assert_eq!(overall.dimensional.as_ref(), Some(d));
        // Clips 1–4 carry annotations; clip 4 has all its mass on `other`.
        assert_eq!((d.n_items, d.n_unprojectable), (4, 1));
        assert_eq!(d.labels_without_coordinates, labels(&["other"]));
        assert!((d.mean_mass_without_coordinates - 0.5 / 3.0).abs() < 1e-12);
        let h = circumplex::coordinates("happy").unwrap();
        let s = circumplex::coordinates("sad").unwrap();
        // Valence: projections happy, sad and their midpoint (the `other`
        // half of clip 3 is dropped and the rest renormalised).
        let x = [h.valence, s.valence, (h.valence + s.valence) / 2.0];
        let y = [0.8, -0.6, 0.0];
        let v = d.valence.as_ref().unwrap();
        assert_eq!(v.n_items, 3);
        let (mx, my) = (x.iter().sum::<f64>() / 3.0, y.iter().sum::<f64>() / 3.0);
        let cov: f64 = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - mx) * (b - my))
            .sum::<f64>()
            / 3.0;
        let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum::<f64>() / 3.0;
        let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum::<f64>() / 3.0;
        let r = cov / (vx * vy).sqrt();
        let ccc = 2.0 * cov / (vx + vy + (mx - my).powi(2));
        assert!((v.pearson.unwrap() - r).abs() < 1e-12, "{v:?} vs r {r}");
        assert!((v.ccc.unwrap() - ccc).abs() < 1e-12, "{v:?} vs ccc {ccc}");
        assert!((v.spearman.unwrap() - 1.0).abs() < 1e-12);
        // Arousal: two clips → r = ±1 by construction (happy above sad).
        let a = d.arousal.as_ref().unwrap();
        assert_eq!(a.n_items, 2);
        assert!((a.pearson.unwrap() - 1.0).abs() < 1e-12);
        let md = markdown(&Summary {
            model: "m".into(),
            method: "first-token".into(),
            labels: labels(&l),
            per_dataset_labels: false,
            n_items: preds.len(),
            cache_hits: 0,
            scored: preds.len(),
            failed: 1,
            overall,
            datasets,
            label_renames: BTreeMap::new(),
            unmapped_labels: BTreeMap::new(),
            labels_never_referenced: Vec::new(),
        });
        assert!(md.contains("## Valence / arousal"), "{md}");
        assert!(md.contains("| dim | 3 |"), "{md}");
        assert!(md.contains("labels without coordinates") && md.contains("Glasgow Norms"));
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
