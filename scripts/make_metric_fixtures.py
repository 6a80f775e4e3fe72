#!/usr/bin/env python3
"""Reference values for emomon's evaluation metrics (src/eval/metrics.rs).

Computes every metric on fixed, seeded inputs with scikit-learn / SciPy (or a
direct NumPy transcription of the definition where neither library has the
metric: Bhattacharyya coefficient, ECE, Lin's concordance correlation
coefficient, the expected-coordinate projection) and writes inputs and expected outputs to
tests/fixtures/metrics/reference.json. The Rust test `tests/integration/metrics.rs` reads
the inputs from that file and checks its own implementation within 1e-6
(`concordance` and `project` are checked by the unit tests in
src/eval/metrics.rs).

Run once, commit the JSON (the script is not run by tests):

    python3 -m venv /root/.cache/metrics-venv
    /root/.cache/metrics-venv/bin/pip install numpy scipy scikit-learn
    /root/.cache/metrics-venv/bin/python scripts/make_metric_fixtures.py
"""

import json
import pathlib

import numpy as np
import scipy
import sklearn
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, pearsonr, spearmanr
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    r2_score,
)

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/metrics/reference.json"

# Must match emomon::eval::metrics::KL_EPSILON.
KL_EPSILON = 1e-6
N_BINS = 10


def normalise(p):
    p = np.asarray(p, dtype=np.float64)
    return p / p.sum()


def smooth(p, eps):
    """Additive smoothing used for KL: (p + eps) / (1 + K eps) on a normalised p."""
    p = normalise(p)
    return (p + eps) / (1.0 + eps * len(p))


def ece_and_bins(probs, y_true, n_bins):
    """Top-label ECE with equal-width bins [b/M, (b+1)/M), the last closed."""
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    conf = probs.max(axis=1)
    pred = probs.argmax(axis=1)
    correct = (pred == np.asarray(y_true)).astype(np.float64)
    idx = np.minimum(np.floor(conf * n_bins).astype(int), n_bins - 1)
    bins = []
    ece = 0.0
    n = len(conf)
    for b in range(n_bins):
        mask = idx == b
        count = int(mask.sum())
        if count:
            mc = float(conf[mask].mean())
            acc = float(correct[mask].mean())
            ece += count / n * abs(acc - mc)
        else:
            mc = None
            acc = None
        bins.append(
            {
                "lower": b / n_bins,
                "upper": (b + 1) / n_bins,
                "count": count,
                "mean_confidence": mc,
                "accuracy": acc,
            }
        )
    return ece, bins


def ccc(x, y):
    """Lin's concordance correlation coefficient with population moments (Lin 1989)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sxy = np.cov(x, y, bias=True)[0, 1]
    return 2.0 * sxy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def nan_to_none(xs):
    return [None if (x is None or np.isnan(x)) else float(x) for x in xs]


def main():
    rng = np.random.default_rng(20261123)

    # --- Categorical: 7 classes; class 5 is predicted but never true, class 6
    # appears in neither (checks which classes UAR / macro-F1 average over).
    n_classes = 7
    n = 60
    y_true = rng.integers(0, 5, size=n)
    y_pred = y_true.copy()
    flip = rng.random(n) < 0.45
    y_pred[flip] = rng.integers(0, 6, size=flip.sum())

    cm = confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(n_classes)), zero_division=np.nan
    )

    # --- Distributions: human vote distributions (integer votes, many zeros)
    # against model distributions (Dirichlet, some exact zeros).
    k = 6
    m = 40
    votes = np.array([rng.multinomial(rng.integers(4, 13), rng.dirichlet(np.full(k, 0.5))) for _ in range(m)])
    votes[votes.sum(axis=1) == 0, 0] = 1
    human = votes / votes.sum(axis=1, keepdims=True)
    model = rng.dirichlet(np.full(k, 0.8), size=m)
    model[:5, 0] = 0.0  # exact zeros where humans may have voted → KL needs epsilon
    model = model / model.sum(axis=1, keepdims=True)
    # Unnormalised copies check that the Rust side normalises like SciPy does.
    model_raw = model * rng.uniform(0.5, 2.0, size=(m, 1))

    js = [float(jensenshannon(h, p) ** 2) for h, p in zip(human, model_raw)]
    kl = [float(entropy(smooth(h, KL_EPSILON), smooth(p, KL_EPSILON))) for h, p in zip(human, model_raw)]
    bc = [float(np.sum(np.sqrt(normalise(h) * normalise(p)))) for h, p in zip(human, model_raw)]
    r2 = float(r2_score(human, model, multioutput="variance_weighted"))

    # --- Calibration: top-label confidence of `model` against labels.
    cal_true = rng.integers(0, k, size=m)
    # Make the model right more often than chance so bins are non-trivial.
    cal_true[: m // 2] = model[: m // 2].argmax(axis=1)
    ece, bins = ece_and_bins(model_raw, cal_true, N_BINS)

    # --- Correlation: with ties (rounded) for Spearman's average ranks.
    x = np.round(rng.normal(size=30), 1)
    y = np.round(0.6 * x + rng.normal(scale=0.7, size=30), 1)

    # --- Concordance: a shifted, compressed copy (high Pearson, lower CCC).
    cx = rng.normal(size=25)
    cy = 0.5 * cx + 0.3 + rng.normal(scale=0.2, size=25)

    # --- Projection: unnormalised scores over 5 labels, per-label coordinates,
    # the expected coordinate per item, and its correlations with a target.
    proj_scores = rng.uniform(0.0, 3.0, size=(20, 5))
    proj_scores[0, :] = [0.0, 0.0, 2.0, 0.0, 0.0]
    proj_coords = np.round(rng.uniform(-1.0, 1.0, size=5), 3)
    projected = (proj_scores / proj_scores.sum(axis=1, keepdims=True)) @ proj_coords
    proj_target = np.round(projected * 1.5 + rng.normal(scale=0.1, size=20), 2)

    out = {
        "generated_by": "scripts/make_metric_fixtures.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__},
        "kl_epsilon": KL_EPSILON,
        "categorical": {
            "n_classes": n_classes,
            "y_true": y_true.tolist(),
            "y_pred": y_pred.tolist(),
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "uar": float(balanced_accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
            "confusion_matrix": cm.tolist(),
            "precision": nan_to_none(prec),
            "recall": nan_to_none(rec),
            "f1": nan_to_none(f1),
            "support": support.tolist(),
        },
        "distributions": {
            "human": human.tolist(),
            "model": model.tolist(),
            "model_unnormalised": model_raw.tolist(),
            "js_divergence": js,
            "kl_divergence": kl,
            "bhattacharyya": bc,
            "mean_js_divergence": float(np.mean(js)),
            "mean_kl_divergence": float(np.mean(kl)),
            "mean_bhattacharyya": float(np.mean(bc)),
            "r2_variance_weighted": r2,
        },
        "calibration": {
            "n_bins": N_BINS,
            "probs": model_raw.tolist(),
            "y_true": cal_true.tolist(),
            "ece": float(ece),
            "bins": bins,
        },
        "correlation": {
            "x": x.tolist(),
            "y": y.tolist(),
            "pearson": float(pearsonr(x, y).statistic),
            "spearman": float(spearmanr(x, y).statistic),
        },
        "concordance": {
            "x": cx.tolist(),
            "y": cy.tolist(),
            "ccc": float(ccc(cx, cy)),
            "pearson": float(pearsonr(cx, cy).statistic),
        },
        "projection": {
            "scores": proj_scores.tolist(),
            "coords": proj_coords.tolist(),
            "projected": projected.tolist(),
            "target": proj_target.tolist(),
            "pearson": float(pearsonr(projected, proj_target).statistic),
            "spearman": float(spearmanr(projected, proj_target).statistic),
            "ccc": float(ccc(projected, proj_target)),
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
