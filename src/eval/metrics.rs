//! Evaluation metrics for emotion predictions against human annotation.
//!
//! Three families, matching how the ambiguous-emotion literature reports
//! results (arXiv 2505.18484, 2602.03873):
//!
//! * **categorical** — the predicted label (argmax) against one reference label:
//!   accuracy, unweighted average recall (UAR), macro-F1, confusion matrix;
//! * **distributional** — the predicted distribution against the human vote
//!   distribution: Jensen–Shannon and Kullback–Leibler divergence,
//!   Bhattacharyya coefficient, R²;
//! * **calibration** — does top-label confidence match accuracy: expected
//!   calibration error (ECE) and reliability-diagram bins;
//!
//! plus Pearson, Spearman and Lin's concordance correlation for
//! valence/arousal projections of the distributions (see [`project`] and
//! [`super::circumplex`]).
//!
//! All logarithms are natural (divergences in nats). Distribution inputs are
//! normalised to sum to 1 before use, as SciPy does, so raw vote counts or
//! unnormalised scores can be passed directly. Reference values for every
//! function come from scikit-learn/SciPy, or a direct NumPy transcription of
//! the definition where neither has the metric (Bhattacharyya coefficient,
//! ECE, [`concordance`], [`project`]) (`scripts/make_metric_fixtures.py`,
//! checked within 1e-6 by `tests/integration/metrics.rs` and this module's unit tests).
//! `docs/eval.md` defines each metric as the eval summary reports it.

use serde::{Deserialize, Serialize};

/// Additive smoothing for [`kl_divergence`] (see there), the default of
/// [`distribution_metrics`].
pub const KL_EPSILON: f64 = 1e-6;

/// Default number of equal-width confidence bins for [`calibration`].
pub const DEFAULT_ECE_BINS: usize = 10;

/// Bad metric input.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("no items to evaluate")]
    Empty,
    #[error("length mismatch: {left} vs {right}")]
    LengthMismatch { left: usize, right: usize },
    #[error("class index {class} out of range for {n_classes} classes")]
    ClassOutOfRange { class: usize, n_classes: usize },
    #[error("not a distribution: values must be finite, non-negative and not all zero")]
    BadDistribution,
    #[error("{0} is undefined for constant input")]
    ConstantInput(&'static str),
    #[error("number of bins must be at least 1")]
    NoBins,
}

type Result<T> = std::result::Result<T, MetricsError>;

fn check_pair(a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(MetricsError::LengthMismatch { left: a, right: b });
    }
    if a == 0 {
        return Err(MetricsError::Empty);
    }
    Ok(())
}

// ---------------------------------------------------------------- categorical

/// Confusion matrix `C[t][p]` = number of items with true class `t` predicted
/// as `p` (rows true, columns predicted; scikit-learn's layout).
pub fn confusion_matrix(
    y_true: &[usize],
    y_pred: &[usize],
    n_classes: usize,
) -> Result<Vec<Vec<u64>>> {
    check_pair(y_true.len(), y_pred.len())?;
    let mut cm = vec![vec![0u64; n_classes]; n_classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        for class in [t, p] {
            if class >= n_classes {
                return Err(MetricsError::ClassOutOfRange { class, n_classes });
            }
        }
        cm[t][p] += 1;
    }
    Ok(cm)
}

/// Accuracy: fraction of items whose predicted class equals the true class.
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    check_pair(y_true.len(), y_pred.len())?;
    let hits = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(hits as f64 / y_true.len() as f64)
}

/// Per-class precision, recall and F1 with the class's support.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// TP / (TP + FP); `None` when the class is never predicted.
    pub precision: Option<f64>,
    /// TP / (TP + FN); `None` when the class never occurs in the reference.
    pub recall: Option<f64>,
    /// 2TP / (2TP + FP + FN) (the harmonic mean of precision and recall, with
    /// an undefined one counted as 0); `None` when the class occurs in neither.
    pub f1: Option<f64>,
    /// Number of reference items of this class.
    pub support: u64,
}

/// Precision, recall and F1 for every class `0..n_classes`.
pub fn per_class_scores(
    y_true: &[usize],
    y_pred: &[usize],
    n_classes: usize,
) -> Result<Vec<ClassScores>> {
    let cm = confusion_matrix(y_true, y_pred, n_classes)?;
    Ok((0..n_classes)
        .map(|c| {
            let tp = cm[c][c] as f64;
            let support: u64 = cm[c].iter().sum();
            let predicted: u64 = cm.iter().map(|row| row[c]).sum();
            let fn_ = support as f64 - tp;
            let fp = predicted as f64 - tp;
            let ratio = |num: f64, den: f64| (den > 0.0).then(|| num / den);
            ClassScores {
                precision: ratio(tp, predicted as f64),
                recall: ratio(tp, support as f64),
                f1: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
                support,
            }
        })
        .collect())
}

/// Unweighted average recall (UAR, "balanced accuracy"): the mean of per-class
/// recall over the classes that occur in `y_true`, so every emotion counts
/// equally however rare it is. Classes absent from the reference have no
/// recall and are left out (scikit-learn's `balanced_accuracy_score`).
pub fn unweighted_average_recall(
    y_true: &[usize],
    y_pred: &[usize],
    n_classes: usize,
) -> Result<f64> {
    let scores = per_class_scores(y_true, y_pred, n_classes)?;
    mean_defined(scores.iter().map(|s| s.recall))
}

/// Macro-F1: the mean of per-class F1 over the classes that occur in `y_true`
/// or `y_pred` (scikit-learn's `f1_score(average="macro")` without explicit
/// labels). A class that is predicted but never true has F1 = 0 and counts;
/// a class that appears nowhere is left out.
pub fn macro_f1(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<f64> {
    let scores = per_class_scores(y_true, y_pred, n_classes)?;
    mean_defined(scores.iter().map(|s| s.f1))
}

/// All categorical metrics at once, as written to the eval summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalMetrics {
    /// See [`accuracy`].
    pub accuracy: f64,
    /// See [`unweighted_average_recall`].
    pub uar: f64,
    /// See [`macro_f1`].
    pub macro_f1: f64,
    /// See [`confusion_matrix`] (rows true, columns predicted).
    pub confusion: Vec<Vec<u64>>,
    /// See [`per_class_scores`].
    pub per_class: Vec<ClassScores>,
    /// Items evaluated.
    pub n_items: usize,
}

/// Accuracy, UAR, macro-F1, confusion matrix and per-class scores.
pub fn categorical_metrics(
    y_true: &[usize],
    y_pred: &[usize],
    n_classes: usize,
) -> Result<CategoricalMetrics> {
    Ok(CategoricalMetrics {
        accuracy: accuracy(y_true, y_pred)?,
        uar: unweighted_average_recall(y_true, y_pred, n_classes)?,
        macro_f1: macro_f1(y_true, y_pred, n_classes)?,
        confusion: confusion_matrix(y_true, y_pred, n_classes)?,
        per_class: per_class_scores(y_true, y_pred, n_classes)?,
        n_items: y_true.len(),
    })
}

fn mean_defined(values: impl Iterator<Item = Option<f64>>) -> Result<f64> {
    let (sum, n) = values
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        return Err(MetricsError::Empty);
    }
    Ok(sum / n as f64)
}

// ------------------------------------------------------------- distributions

/// Normalises a non-negative vector to sum to 1.
pub fn normalise(p: &[f64]) -> Result<Vec<f64>> {
    if p.is_empty() {
        return Err(MetricsError::Empty);
    }
    if p.iter().any(|x| !x.is_finite() || *x < 0.0) {
        return Err(MetricsError::BadDistribution);
    }
    let s: f64 = p.iter().sum();
    if s <= 0.0 {
        return Err(MetricsError::BadDistribution);
    }
    Ok(p.iter().map(|x| x / s).collect())
}

fn normalised_pair(p: &[f64], q: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    check_pair(p.len(), q.len())?;
    Ok((normalise(p)?, normalise(q)?))
}

/// `Σ a ln(a/b)` with `0 ln 0 = 0`; caller guarantees `b > 0` where `a > 0`.
fn kl_raw(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .filter(|(x, _)| **x > 0.0)
        .map(|(x, y)| x * (x / y).ln())
        .sum()
}

/// Jensen–Shannon divergence in nats:
/// `JS(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m)` with `m = (p + q)/2`.
/// Symmetric, finite even with zeros, in `[0, ln 2]`. (SciPy's
/// `jensenshannon` returns the *distance*, the square root of this.)
pub fn js_divergence(p: &[f64], q: &[f64]) -> Result<f64> {
    let (p, q) = normalised_pair(p, q)?;
    let m: Vec<f64> = p.iter().zip(&q).map(|(a, b)| 0.5 * (a + b)).collect();
    Ok((0.5 * kl_raw(&p, &m) + 0.5 * kl_raw(&q, &m)).max(0.0))
}

/// Kullback–Leibler divergence `KL(reference ‖ predicted) = Σ r ln(r / q)` in
/// nats — the information lost when the model's distribution stands in for
/// the human one. A model giving zero probability to an emotion some rater
/// chose would make it infinite, so both (normalised) distributions are first
/// smoothed additively, `x' = (x + ε) / (1 + K ε)`; with `ε` =
/// [`KL_EPSILON`] = 1e-6 such a miss costs about `r · ln(r / 1e-6)`, large but
/// finite. Pass `epsilon = 0` for the unsmoothed value (may be `+∞`).
pub fn kl_divergence(reference: &[f64], predicted: &[f64], epsilon: f64) -> Result<f64> {
    let (r, q) = normalised_pair(reference, predicted)?;
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(MetricsError::BadDistribution);
    }
    let k = r.len() as f64;
    let smooth = |v: Vec<f64>| -> Vec<f64> {
        v.into_iter()
            .map(|x| (x + epsilon) / (1.0 + k * epsilon))
            .collect()
    };
    let (r, q) = (smooth(r), smooth(q));
    if r.iter().zip(&q).any(|(a, b)| *a > 0.0 && *b <= 0.0) {
        return Ok(f64::INFINITY);
    }
    Ok(kl_raw(&r, &q).max(0.0))
}

/// Bhattacharyya coefficient `BC(p, q) = Σ √(p q)`: overlap of the two
/// distributions, 1 when identical, 0 when disjoint.
pub fn bhattacharyya_coefficient(p: &[f64], q: &[f64]) -> Result<f64> {
    let (p, q) = normalised_pair(p, q)?;
    Ok(p.iter().zip(&q).map(|(a, b)| (a * b).sqrt()).sum())
}

/// Coefficient of determination of predicted against reference
/// distributions over all items and classes, variance-weighted:
/// `R² = 1 − Σᵢ Σₖ (rᵢₖ − qᵢₖ)² / Σᵢ Σₖ (rᵢₖ − r̄ₖ)²`, where `r̄ₖ` is the mean
/// reference probability of class `k` (scikit-learn's
/// `r2_score(R, Q, multioutput="variance_weighted")`). 1 is perfect; 0 is no
/// better than always predicting the average human distribution; it can be
/// negative. Rows are normalised first.
pub fn r2_distributions(reference: &[Vec<f64>], predicted: &[Vec<f64>]) -> Result<f64> {
    check_pair(reference.len(), predicted.len())?;
    let k = reference[0].len();
    let mut rows = Vec::with_capacity(reference.len());
    for (r, q) in reference.iter().zip(predicted) {
        if r.len() != k {
            return Err(MetricsError::LengthMismatch {
                left: k,
                right: r.len(),
            });
        }
        rows.push(normalised_pair(r, q)?);
    }
    let n = rows.len() as f64;
    let mut mean = vec![0.0; k];
    for (r, _) in &rows {
        for (m, x) in mean.iter_mut().zip(r) {
            *m += x / n;
        }
    }
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for (r, q) in &rows {
        for j in 0..k {
            ss_res += (r[j] - q[j]).powi(2);
            ss_tot += (r[j] - mean[j]).powi(2);
        }
    }
    if ss_tot <= 0.0 {
        return Err(MetricsError::ConstantInput("R²"));
    }
    Ok(1.0 - ss_res / ss_tot)
}

/// Mean distributional metrics over items (see each function).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionMetrics {
    /// Mean Jensen–Shannon divergence, nats.
    pub js_divergence: f64,
    /// Mean KL(reference ‖ predicted), nats, smoothed with `kl_epsilon`.
    pub kl_divergence: f64,
    /// The smoothing used for KL.
    pub kl_epsilon: f64,
    /// Mean Bhattacharyya coefficient.
    pub bhattacharyya: f64,
    /// Variance-weighted R² over all items (`None` if the reference is constant).
    pub r2: Option<f64>,
    /// Items evaluated.
    pub n_items: usize,
}

/// Item-mean JS, KL (with [`KL_EPSILON`]) and Bhattacharyya, plus R².
pub fn distribution_metrics(
    reference: &[Vec<f64>],
    predicted: &[Vec<f64>],
) -> Result<DistributionMetrics> {
    check_pair(reference.len(), predicted.len())?;
    let n = reference.len() as f64;
    let (mut js, mut kl, mut bc) = (0.0, 0.0, 0.0);
    for (r, q) in reference.iter().zip(predicted) {
        js += js_divergence(r, q)? / n;
        kl += kl_divergence(r, q, KL_EPSILON)? / n;
        bc += bhattacharyya_coefficient(r, q)? / n;
    }
    let r2 = match r2_distributions(reference, predicted) {
        Ok(v) => Some(v),
        Err(MetricsError::ConstantInput(_)) => None,
        Err(e) => return Err(e),
    };
    Ok(DistributionMetrics {
        js_divergence: js,
        kl_divergence: kl,
        kl_epsilon: KL_EPSILON,
        bhattacharyya: bc,
        r2,
        n_items: reference.len(),
    })
}

// ---------------------------------------------------------------- calibration

/// One bar of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Inclusive lower edge of the confidence bin.
    pub lower: f64,
    /// Exclusive upper edge (inclusive for the last bin, so confidence 1 counts).
    pub upper: f64,
    /// Items whose top-label confidence falls in the bin.
    pub count: usize,
    /// Mean top-label confidence of those items (`None` when empty).
    pub mean_confidence: Option<f64>,
    /// Fraction of those items whose top label is correct (`None` when empty).
    pub accuracy: Option<f64>,
}

/// Calibration of top-label confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Expected calibration error `Σ_b (n_b / N) |acc_b − conf_b|`.
    pub ece: f64,
    /// The reliability diagram, one entry per bin (empty bins included).
    pub bins: Vec<ReliabilityBin>,
}

/// Expected calibration error on top-label confidence with `n_bins`
/// equal-width bins on [0, 1] (default [`DEFAULT_ECE_BINS`] = 10; Guo et al.
/// 2017). Each item's confidence is the largest probability of its normalised
/// distribution and its prediction is that label (first on ties); bin `b`
/// holds confidences in `[b/M, (b+1)/M)` (the last bin also takes 1.0). ECE
/// is the support-weighted mean gap between accuracy and mean confidence.
pub fn calibration(probs: &[Vec<f64>], y_true: &[usize], n_bins: usize) -> Result<Calibration> {
    check_pair(probs.len(), y_true.len())?;
    if n_bins == 0 {
        return Err(MetricsError::NoBins);
    }
    let mut count = vec![0usize; n_bins];
    let mut conf_sum = vec![0.0; n_bins];
    let mut hit_sum = vec![0.0; n_bins];
    for (p, &t) in probs.iter().zip(y_true) {
        let p = normalise(p)?;
        if t >= p.len() {
            return Err(MetricsError::ClassOutOfRange {
                class: t,
                n_classes: p.len(),
            });
        }
        let top = argmax(&p);
        let conf = p[top];
        let b = ((conf * n_bins as f64).floor() as usize).min(n_bins - 1);
        count[b] += 1;
        conf_sum[b] += conf;
        hit_sum[b] += f64::from(u8::from(top == t));
    }
    let n = probs.len() as f64;
    let mut ece = 0.0;
    let bins = (0..n_bins)
        .map(|b| {
            let c = count[b];
            let (mc, acc) = if c > 0 {
                let mc = conf_sum[b] / c as f64;
                let acc = hit_sum[b] / c as f64;
                ece += c as f64 / n * (acc - mc).abs();
                (Some(mc), Some(acc))
            } else {
                (None, None)
            };
            ReliabilityBin {
                lower: b as f64 / n_bins as f64,
                upper: (b + 1) as f64 / n_bins as f64,
                count: c,
                mean_confidence: mc,
                accuracy: acc,
            }
        })
        .collect();
    Ok(Calibration { ece, bins })
}

/// Index of the largest value, the first one on ties (NumPy's `argmax`).
pub fn argmax(p: &[f64]) -> usize {
    p.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > p[best] { i } else { best })
}

// ---------------------------------------------------------------- correlation

/// Means and centred sums of squares and products of a pair of series.
struct Moments {
    n: f64,
    mx: f64,
    my: f64,
    sxx: f64,
    syy: f64,
    sxy: f64,
}

fn moments(x: &[f64], y: &[f64]) -> Moments {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    Moments {
        n,
        mx,
        my,
        sxx,
        syy,
        sxy,
    }
}

/// Pearson correlation `cov(x, y) / (σ_x σ_y)`.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    check_pair(x.len(), y.len())?;
    let Moments { sxx, syy, sxy, .. } = moments(x, y);
    if sxx <= 0.0 || syy <= 0.0 {
        return Err(MetricsError::ConstantInput("correlation"));
    }
    Ok((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// Spearman rank correlation: Pearson correlation of the ranks, tied values
/// sharing their average rank (SciPy's `spearmanr`).
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    check_pair(x.len(), y.len())?;
    pearson(&average_ranks(x), &average_ranks(y))
}

/// 1-based ranks with ties averaged.
fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Lin's concordance correlation coefficient
/// `ρc = 2 s_xy / (s_x² + s_y² + (x̄ − ȳ)²)`, with population (divide-by-n)
/// variances and covariance as in Lin (1989, Biometrics 45:255–268). Unlike
/// Pearson's r it also penalises a shift or a change of scale between the two
/// series, so it is 1 only when `y = x` exactly — the agreement measure
/// dimensional emotion challenges (AVEC, MSP-Podcast) report. A projection
/// that tracks the annotation but on a compressed scale gets a high r and a
/// lower CCC. Undefined when both series are constant and equal.
pub fn concordance(x: &[f64], y: &[f64]) -> Result<f64> {
    check_pair(x.len(), y.len())?;
    let Moments {
        n,
        mx,
        my,
        sxx,
        syy,
        sxy,
    } = moments(x, y);
    let den = sxx / n + syy / n + (mx - my).powi(2);
    if den <= 0.0 {
        return Err(MetricsError::ConstantInput("concordance"));
    }
    Ok((2.0 * sxy / n / den).clamp(-1.0, 1.0))
}

/// Projection of a distribution onto one dimension (e.g. valence or arousal):
/// the expected coordinate `Σ pₖ cₖ` under the normalised distribution, given
/// a coordinate `cₖ` per label. Correlate these with dimensional annotations
/// via [`pearson`] / [`spearman`] / [`concordance`].
pub fn project(probs: &[f64], coords: &[f64]) -> Result<f64> {
    check_pair(probs.len(), coords.len())?;
    let p = normalise(probs)?;
    Ok(p.iter().zip(coords).map(|(a, c)| a * c).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_cases_by_hand() {
        let t = [0, 0, 1, 1];
        let p = [0, 1, 1, 1];
        assert_eq!(accuracy(&t, &p), Ok(0.75));
        // Recall: class 0 = 1/2, class 1 = 2/2 → UAR 0.75.
        assert_eq!(unweighted_average_recall(&t, &p, 3), Ok(0.75));
        // F1: class 0 = 2/(2+0+1) = 2/3, class 1 = 4/(4+1+0) = 4/5.
        let f1 = macro_f1(&t, &p, 3).expect("ok");
        assert!((f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
        assert_eq!(
            confusion_matrix(&t, &p, 2),
            Ok(vec![vec![1, 1], vec![0, 2]])
        );
        assert!(confusion_matrix(&t, &[0, 0, 0, 5], 2).is_err());
    }

    #[test]
    fn divergences_at_extremes() {
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        assert!((js_divergence(&a, &b).expect("ok") - 2f64.ln()).abs() < 1e-12);
        assert_eq!(js_divergence(&a, &a), Ok(0.0));
        assert_eq!(bhattacharyya_coefficient(&a, &b), Ok(0.0));
        assert_eq!(kl_divergence(&a, &b, 0.0), Ok(f64::INFINITY));
        let smoothed = kl_divergence(&a, &b, KL_EPSILON).expect("ok");
        assert!(smoothed.is_finite() && smoothed > 10.0);
        // Counts are normalised: [2, 2] is the uniform distribution.
        assert!(
            (bhattacharyya_coefficient(&[2.0, 2.0], &[0.5, 0.5]).expect("ok") - 1.0).abs() < 1e-12
        );
        assert!(js_divergence(&[-1.0, 2.0], &[0.5, 0.5]).is_err());
    }

    #[test]
    fn calibration_by_hand() {
        // Confidences 0.9 (right), 0.9 (wrong), 0.55 (right), 2 bins.
        let probs = vec![vec![0.9, 0.1], vec![0.1, 0.9], vec![0.55, 0.45]];
        let cal = calibration(&probs, &[0, 0, 0], 2).expect("ok");
        // Bin 1: conf 0.9, 0.9, 0.55 → mean 0.7833, acc 2/3; bin 0 empty.
        assert_eq!(cal.bins[0].count, 0);
        assert_eq!(cal.bins[1].count, 3);
        let expected = (2.0 / 3.0 - (0.9 + 0.9 + 0.55) / 3.0f64).abs();
        assert!((cal.ece - expected).abs() < 1e-12);
    }

    /// The `concordance` and `projection` sections of the SciPy/NumPy
    /// reference file (`scripts/make_metric_fixtures.py`).
    fn reference(section: &str) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/metrics/reference.json");
        let text = std::fs::read_to_string(&path).expect("reference.json");
        let all: serde_json::Value = serde_json::from_str(&text).expect("json");
        all[section].clone()
    }

    fn floats(v: &serde_json::Value) -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    }

    fn close(name: &str, got: f64, want: &serde_json::Value) {
        let want = want.as_f64().expect("number");
        assert!(
            (got - want).abs() <= 1e-6,
            "{name}: {got} vs reference {want}"
        );
    }

    #[test]
    fn concordance_matches_reference() {
        let r = reference("concordance");
        let (x, y) = (floats(&r["x"]), floats(&r["y"]));
        close("ccc", concordance(&x, &y).expect("ok"), &r["ccc"]);
        close("pearson", pearson(&x, &y).expect("ok"), &r["pearson"]);
        // A shifted, compressed copy: Pearson stays high, CCC drops.
        assert!(concordance(&x, &y).expect("ok") < pearson(&x, &y).expect("ok") - 0.1);
        assert_eq!(concordance(&x, &x), Ok(1.0));
        assert!(concordance(&[1.0, 1.0], &[1.0, 1.0]).is_err());
        // Constant but different series are defined (and show no agreement).
        assert_eq!(concordance(&[1.0, 1.0], &[2.0, 2.0]), Ok(0.0));
    }

    #[test]
    fn projection_matches_reference() {
        let r = reference("projection");
        let coords = floats(&r["coords"]);
        let projected: Vec<f64> = r["scores"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| project(&floats(row), &coords).expect("ok"))
            .collect();
        for (i, (got, want)) in projected.iter().zip(floats(&r["projected"])).enumerate() {
            assert!((got - want).abs() <= 1e-6, "item {i}: {got} vs {want}");
        }
        let target = floats(&r["target"]);
        close(
            "pearson",
            pearson(&projected, &target).expect("ok"),
            &r["pearson"],
        );
        close(
            "spearman",
            spearman(&projected, &target).expect("ok"),
            &r["spearman"],
        );
        close(
            "ccc",
            concordance(&projected, &target).expect("ok"),
            &r["ccc"],
        );
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_err());
        assert_eq!(project(&[1.0, 3.0], &[-1.0, 1.0]), Ok(0.5));
    }
}
