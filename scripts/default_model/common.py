"""Shared pieces of the issue-6 experiments: labels, speaker folds, metrics, calibration."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust", "boredom", "calm", "surprise"]
# First token of " <label>" in Whisper's multilingual tokenizer (all distinct; " disgust" =
# " disg"+"ust", " boredom" = " bored"+"om"; the others are single tokens).
LABEL_TOKENS = [10598, 2055, 4227, 6884, 4240, 14116, 13521, 7151, 6365]
DATASETS = ["emodb", "ravdess", "urdu"]
DATASET_LABELS = {
    "emodb": ["neutral", "happy", "sad", "angry", "fear", "disgust", "boredom"],
    "ravdess": ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"],
    "urdu": ["neutral", "happy", "sad", "angry"],
}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emomon"
STATES = CACHE / "states" / "whisper-base-unpadded.pt"


def load(path: Path = STATES) -> dict:
    data = torch.load(path, weights_only=False)
    clips = data["clips"]
    data["y"] = np.array([LABELS.index(c["label"]) for c in clips])
    data["ds"] = np.array([DATASETS.index(c["dataset"]) for c in clips])
    data["mask"] = np.stack([label_mask(c["dataset"]) for c in clips])  # [N, 9] bool
    return data


def label_mask(dataset: str) -> np.ndarray:
    return np.array([l in DATASET_LABELS[dataset] for l in LABELS])


def speaker_folds(clips: list[dict], k: int = 4, seed: int = 0) -> np.ndarray:
    """Fold id per clip: each dataset's speakers shuffled (fixed seed) and dealt round-robin
    into k groups, so every fold holds out ~1/k of every dataset's speakers."""
    fold = np.zeros(len(clips), dtype=int)
    rng = np.random.default_rng(seed)
    for ds in sorted({c["dataset"] for c in clips}):
        spk = sorted({c["speaker"] for c in clips if c["dataset"] == ds})
        order = rng.permutation(len(spk))
        of = {spk[j]: i % k for i, j in enumerate(order)}
        for n, c in enumerate(clips):
            if c["dataset"] == ds:
                fold[n] = of[c["speaker"]]
    return fold


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return torch.log_softmax((logits / temperature).masked_fill(~mask, float("-inf")), dim=-1)


def metrics(probs: np.ndarray, y: np.ndarray, classes: list[int], bins: int = 15) -> dict:
    pred = probs.argmax(1)
    recalls, f1s = [], []
    for c in classes:
        tp = np.sum((pred == c) & (y == c))
        rec = tp / max(1, np.sum(y == c))
        prec = tp / max(1, np.sum(pred == c))
        recalls.append(rec)
        f1s.append(0.0 if tp == 0 else 2 * prec * rec / (prec + rec))
    conf = probs.max(1)
    correct = pred == y
    ece = 0.0
    edges = np.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    nll = -np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)))
    cm = np.array([[np.sum((y == a) & (pred == b)) for b in classes] for a in classes])
    return {"n": len(y), "acc": correct.mean(), "uar": np.mean(recalls), "macro_f1": np.mean(f1s),
            "ece": ece, "nll": nll, "confusion": cm}


def fit_temperature(logits: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    lg, yy, mm = torch.tensor(logits), torch.tensor(y), torch.tensor(mask)
    best = (float("inf"), 1.0)
    for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 120)):
        nll = -masked_log_softmax(lg, mm, float(t))[torch.arange(len(yy)), yy].mean().item()
        best = min(best, (nll, float(t)))
    return best[1]


def report(name: str, logits: np.ndarray, data: dict, fold: np.ndarray, out: list[str]) -> dict:
    """Per-dataset metrics of out-of-fold logits, at T=1 and with a cross-fitted temperature
    (fold k's temperature fitted on the out-of-fold logits of the other folds)."""
    y, mask, ds = data["y"], data["mask"], data["ds"]
    temps = {}
    scaled = np.zeros_like(logits)
    for k in np.unique(fold):
        other = fold != k
        t = fit_temperature(logits[other], y[other], mask[other]) if other.any() else 1.0
        temps[int(k)] = t
        scaled[fold == k] = logits[fold == k] / t
    res = {}
    lines = [f"\n## {name}", f"cross-fitted temperatures per fold: {', '.join(f'{t:.2f}' for t in temps.values())}"
             f"; on all out-of-fold logits: {fit_temperature(logits, y, mask):.2f}",
             "| dataset | n | acc | UAR | macro-F1 | ECE (T=1) | ECE (T cross-fitted) | NLL (T=1) |",
             "|---|---|---|---|---|---|---|---|"]
    for d, dname in enumerate(DATASETS):
        m = ds == d
        if not m.any():
            continue
        classes = [LABELS.index(l) for l in DATASET_LABELS[dname]]
        p1 = masked_log_softmax(torch.tensor(logits[m]), torch.tensor(mask[m])).exp().numpy()
        pt = masked_log_softmax(torch.tensor(scaled[m]), torch.tensor(mask[m])).exp().numpy()
        a, b = metrics(p1, y[m], classes), metrics(pt, y[m], classes)
        res[dname] = {**a, "ece_t": b["ece"]}
        lines.append(f"| {dname} ({len(classes)} cl.) | {a['n']} | {a['acc']:.3f} | {a['uar']:.3f} | {a['macro_f1']:.3f} "
                     f"| {a['ece']:.3f} | {b['ece']:.3f} | {a['nll']:.3f} |")
    for dname in res:
        lines.append(f"confusion {dname} (rows true, cols pred; {', '.join(DATASET_LABELS[dname])}):")
        lines.append("  " + str(res[dname]["confusion"].tolist()))
    out.extend(lines)
    print("\n".join(lines), flush=True)
    return res
