#!/usr/bin/env python3
"""Issue-6 baseline: logistic regression on mean+std pooled Whisper base encoder states,
trained on emodb+ravdess+urdu together, speaker-independent 4-fold CV (fixed seed).

One 9-way linear layer over standardised features; each clip's softmax runs over its own
dataset's labels only (labels a dataset cannot have are masked out), loss weighted so the
three datasets count equally, L2 penalty, full-batch L-BFGS.

    python scripts/default_model/baseline.py [--layers -1] [--l2 1e-3] [--cross-corpus]
"""
from __future__ import annotations

import argparse
from pathlib import Path
import time

import numpy as np
import torch

import common as C
from train import load_states


def train_lr(x, y, mask, w, l2: float) -> torch.nn.Linear:
    torch.manual_seed(0)
    lin = torch.nn.Linear(x.shape[1], len(C.LABELS))
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1, max_iter=300, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        lp = C.masked_log_softmax(lin(x), mask)
        loss = -(w * lp[torch.arange(len(y)), y]).sum() / w.sum() + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lin


def run(data, fold, layer: int, l2: float, train_sel=None, test_sel=None) -> tuple[np.ndarray, float]:
    feats = torch.stack([c["pooled"][layer] for c in data["clips"]]).float()
    y = torch.tensor(data["y"])
    mask = torch.tensor(data["mask"])
    ds = data["ds"]
    counts = np.bincount(ds, minlength=3)
    w_all = torch.tensor(1.0 / counts[ds], dtype=torch.float32)
    logits = np.zeros((len(y), len(C.LABELS)), dtype=np.float32)
    t0 = time.time()
    folds = np.unique(fold) if train_sel is None else [0]
    for k in folds:
        tr = fold != k
        te = fold == k
        if train_sel is not None:  # cross-corpus: one split, given explicitly
            tr, te = train_sel, test_sel
        mu, sd = feats[tr].mean(0), feats[tr].std(0) + 1e-5
        xs = (feats - mu) / sd
        trm = torch.tensor(tr)
        lin = train_lr(xs[trm], y[trm], mask[trm], w_all[trm], l2)
        with torch.no_grad():
            logits[te] = lin(xs[torch.tensor(te)]).numpy()
    return logits, (time.time() - t0) / len(folds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default="-1", help="comma list of pooled-state indices (0 = conv output, -1 = final)")
    ap.add_argument("--l2", default="1e-3")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cross-corpus", action="store_true")
    ap.add_argument("--only-folds", default="", help="comma list: report only these held-out folds")
    ap.add_argument("--out", default="")
    ap.add_argument("--states", type=Path, nargs="+", default=None,
                    help="state files of encode_states.py (default: common.STATES); clips ordered by path, as train.py")
    args = ap.parse_args()
    torch.set_num_threads(2)
    data = load_states(args.states) if args.states else C.load()
    fold = C.speaker_folds(data["clips"], args.folds, args.seed)
    out = [f"# baseline: {len(data['clips'])} clips ({data.get('ravdess_repetition')} RAVDESS repetition(s), "
           f"trim {data.get('trim_db')} dB), {args.folds} speaker folds, seed {args.seed}"]
    for layer in [int(s) for s in args.layers.split(",")]:
        for l2 in [float(s) for s in args.l2.split(",")]:
            logits, sec = run(data, fold, layer, l2)
            if args.only_folds:
                sel = np.isin(fold, [int(s) for s in args.only_folds.split(",")])
                sub = {"y": data["y"][sel], "mask": data["mask"][sel], "ds": data["ds"][sel]}
                C.report(f"LR, pooled layer {layer}, l2 {l2}: held-out folds {args.only_folds} only (same clips as the adapter run)", logits[sel], sub, fold[sel], out)
            else:
                C.report(f"LR, pooled layer {layer}, l2 {l2} (train {sec:.1f} s/fold)", logits, data, fold, out)
    if args.cross_corpus:
        layer, l2 = int(args.layers.split(",")[0]), float(args.l2.split(",")[0])
        one = np.zeros(len(fold), dtype=int)
        for d, name in enumerate(C.DATASETS):
            held = data["ds"] == d
            logits, _ = run(data, one, layer, l2, train_sel=~held, test_sel=held)
            # only labels seen in training can be predicted; score over those
            seen = data["mask"][~held].any(0)
            sub = {**data, "mask": data["mask"] & seen}
            keep = held & seen[data["y"]]
            subd = {"y": data["y"][keep], "mask": sub["mask"][keep], "ds": data["ds"][keep]}
            C.report(f"cross-corpus LR (layer {layer}): train without {name}, test on {name} "
                     f"(clips of labels unseen in training dropped: {int(held.sum() - keep.sum())})",
                     logits[keep], subd, one[keep], out)
    if args.out:
        open(args.out, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
