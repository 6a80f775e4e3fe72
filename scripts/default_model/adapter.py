#!/usr/bin/env python3
"""Issue-6 adaptation: Whisper base, frozen, taught to answer with an emotion word.

The decoder sees a learned *prefix* (K key/value vectors per layer, i.e. a learned
self-attention KV cache -- prefix tuning) followed by one real token,
<|startoftranscript|> at position K; the logits of the label words' first tokens
(" neutral", " happy", ..., via the tied embedding matrix) at that position are the
answer. Optional LoRA (rank r) on the decoder's cross-attention q/k/v/out, self-attention
q/v/out and MLP fc1/fc2. Every base weight stays frozen, so the adaptation is the prefix
plus LoRA factors (or LoRA merged into deltas) -- what emomon-models needs to apply is
"pre-fill the KV cache with the prefix" and "add B@A to named linear weights".

Trained with cross-entropy over the label tokens at the answer position; each clip's
softmax runs over its own dataset's labels only (labels a dataset cannot have are masked
out), loss weighted so the three datasets count equally. Speaker-independent 4-fold CV
on the same folds as baseline.py. Uses cached encoder states and cross-attention k/v from
encode_states.py (base k/v precomputed once; LoRA on k/v adds its low-rank term on the fly).

    python scripts/default_model/adapter.py [--prefix 8] [--rank 8] [--epochs 6] [--cross-kv-lora]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import common as C

SOT = 50258


class LoRA(torch.nn.Module):
    def __init__(self, d_in: int, d_out: int, r: int, alpha: float):
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(r, d_in) / math.sqrt(d_in))
        self.b = torch.nn.Parameter(torch.zeros(d_out, r))
        self.scale = alpha / r

    def forward(self, x):
        return (x @ self.a.T) @ self.b.T * self.scale


class Adapted(torch.nn.Module):
    def __init__(self, w: dict, prefix: int, rank: int, alpha: float, heads: int = 8, cross_kv_lora: bool = False,
                 cond_dim: int = 0):
        super().__init__()
        self.w = {k: v.float() for k, v in w.items() if k.startswith("model.decoder.")}
        self.n_layers = 1 + max(int(k.split(".")[3]) for k in self.w if ".layers." in k)
        self.d = self.w["model.decoder.embed_tokens.weight"].shape[1]
        self.heads, self.prefix_len = heads, prefix
        # prefix init: keys/values of real token embeddings (" emotion"-like scale), small noise
        g = torch.Generator().manual_seed(0)
        emb = self.w["model.decoder.embed_tokens.weight"]
        ids = torch.randint(0, 50000, (prefix,), generator=g)
        pk, pv = [], []
        for l in range(self.n_layers):
            p = f"model.decoder.layers.{l}.self_attn"
            h = F.layer_norm(emb[ids] + self.w["model.decoder.embed_positions.weight"][:prefix], (self.d,),
                             self.w[f"model.decoder.layers.{l}.self_attn_layer_norm.weight"],
                             self.w[f"model.decoder.layers.{l}.self_attn_layer_norm.bias"])
            pk.append(h @ self.w[f"{p}.k_proj.weight"].T)
            pv.append(h @ self.w[f"{p}.v_proj.weight"].T + self.w[f"{p}.v_proj.bias"])
        self.prefix_k = torch.nn.Parameter(torch.stack(pk)) if prefix else None  # [L, K, d]
        self.prefix_v = torch.nn.Parameter(torch.stack(pv)) if prefix else None
        self.lora = torch.nn.ModuleDict()
        if rank:
            ff = self.w["model.decoder.layers.0.fc1.weight"].shape[0]
            for l in range(self.n_layers):
                for name, (i, o) in {"self_attn.q_proj": (self.d, self.d), "self_attn.v_proj": (self.d, self.d),
                                     "self_attn.out_proj": (self.d, self.d),
                                     "encoder_attn.q_proj": (self.d, self.d), "encoder_attn.k_proj": (self.d, self.d),
                                     "encoder_attn.v_proj": (self.d, self.d), "encoder_attn.out_proj": (self.d, self.d),
                                     "fc1": (self.d, ff), "fc2": (ff, self.d)}.items():
                    if name in ("encoder_attn.k_proj", "encoder_attn.v_proj") and not cross_kv_lora:
                        continue
                    self.lora[f"{l}_{name.replace('.', '_')}"] = LoRA(i, o, rank, alpha)
        self.label_emb = emb[C.LABEL_TOKENS]  # [9, d] tied output head rows
        # optional audio-conditioned input: a linear map of standardised pooled mid-layer
        # encoder statistics added to the answer token's input embedding (zero-initialised)
        self.cond = torch.nn.Linear(cond_dim, self.d) if cond_dim else None
        if self.cond is not None:
            torch.nn.init.zeros_(self.cond.weight)
            torch.nn.init.zeros_(self.cond.bias)

    def lin(self, l: int, name: str, x):
        p = f"model.decoder.layers.{l}.{name}"
        y = x @ self.w[f"{p}.weight"].T
        if f"{p}.bias" in self.w:
            y = y + self.w[f"{p}.bias"]
        key = f"{l}_{name.replace('.', '_')}"
        if key in self.lora:
            y = y + self.lora[key](x)
        return y

    def ln(self, l, name, x):
        p = f"model.decoder.layers.{l}.{name}" if l is not None else f"model.decoder.{name}"
        return F.layer_norm(x, (self.d,), self.w[f"{p}.weight"], self.w[f"{p}.bias"])

    def attn(self, q, k, v, key_mask=None):
        b, tq, _ = q.shape
        hd = self.d // self.heads
        q = q.view(b, tq, self.heads, hd).transpose(1, 2)
        k = k.view(b, k.shape[1], self.heads, hd).transpose(1, 2)
        v = v.view(b, v.shape[1], self.heads, hd).transpose(1, 2)
        m = None if key_mask is None else key_mask[:, None, None, :]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
        return o.transpose(1, 2).reshape(b, tq, self.d)

    def forward(self, enc, cross_kv, key_mask, cond=None):
        """enc [B,T,d], cross_kv [L,2,B,T,d] (base k/v), key_mask [B,T] bool -> label logits [B,9]."""
        b = enc.shape[0]
        K = self.prefix_len
        x = (self.w["model.decoder.embed_tokens.weight"][SOT] + self.w["model.decoder.embed_positions.weight"][K])
        x = x.expand(b, 1, self.d)
        if self.cond is not None:
            x = x + self.cond(cond)[:, None]
        for l in range(self.n_layers):
            h = self.ln(l, "self_attn_layer_norm", x)
            q = self.lin(l, "self_attn.q_proj", h)
            k = self.lin(l, "self_attn.k_proj", h)
            v = self.lin(l, "self_attn.v_proj", h)
            if K:
                k = torch.cat([self.prefix_k[l].expand(b, K, self.d), k], 1)
                v = torch.cat([self.prefix_v[l].expand(b, K, self.d), v], 1)
            x = x + self.lin(l, "self_attn.out_proj", self.attn(q, k, v))
            h = self.ln(l, "encoder_attn_layer_norm", x)
            q = self.lin(l, "encoder_attn.q_proj", h)
            ck, cv = cross_kv[l, 0], cross_kv[l, 1]
            kk = f"{l}_encoder_attn_k_proj"
            if kk in self.lora:
                ck = ck + self.lora[kk](enc)
                cv = cv + self.lora[f"{l}_encoder_attn_v_proj"](enc)
            x = x + self.lin(l, "encoder_attn.out_proj", self.attn(q, ck, cv, key_mask))
            h = self.ln(l, "final_layer_norm", x)
            x = x + self.lin(l, "fc2", F.gelu(self.lin(l, "fc1", h)))
        x = self.ln(None, "layer_norm", x)[:, 0]
        return x @ self.label_emb.T

    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def batch(clips, idx):
    t = max(clips[i]["states"].shape[0] for i in idx)
    b, d = len(idx), clips[idx[0]]["states"].shape[1]
    L = clips[idx[0]]["cross_kv"].shape[0]
    enc = torch.zeros(b, t, d)
    kv = torch.zeros(L, 2, b, t, d)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for j, i in enumerate(idx):
        n = clips[i]["states"].shape[0]
        enc[j, :n] = clips[i]["states"].float()
        kv[:, :, j, :n] = clips[i]["cross_kv"].float()
        mask[j, :n] = True
    return enc, kv, mask


def predict(model, clips, idx, feats=None, bs=64):
    out = []
    with torch.no_grad():
        for s in range(0, len(idx), bs):
            j = idx[s : s + bs]
            out.append(model(*batch(clips, j), None if feats is None else feats[j]))
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", type=int, default=8)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--cross-kv-lora", action="store_true",
                    help="LoRA on cross-attention k/v too (about 2x slower per step: T-length low-rank terms)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--only-folds", default="", help="comma list: run only these folds (time-bounded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cond-layer", type=int, default=None,
                    help="also feed standardised mean+std pooled states of this encoder layer (index as in "
                         "encode_states.py: 0 = conv output) into the answer token through a linear map")
    ap.add_argument("--out", default="")
    ap.add_argument("--save-logits", default="")
    args = ap.parse_args()
    torch.set_num_threads(2)
    data = C.load()
    clips = data["clips"]
    w = load_file(str(C.CACHE / "whisper-base" / "model.safetensors"))
    fold = C.speaker_folds(clips, args.folds, args.seed)
    y_all, mask_all, ds = torch.tensor(data["y"]), torch.tensor(data["mask"]), data["ds"]
    counts = np.bincount(ds, minlength=3)
    wt_all = torch.tensor(1.0 / counts[ds] * len(ds) / 3, dtype=torch.float32)
    logits = np.full((len(clips), len(C.LABELS)), np.nan, dtype=np.float32)
    name = (f"prefix {args.prefix} + LoRA r{args.rank} (alpha {args.alpha}; self q/v/out, cross q/out"
            f"{', cross k/v' if args.cross_kv_lora else ''}, fc1/fc2)") if args.rank else f"prefix {args.prefix} only"
    if args.cond_layer is not None:
        name += f" + pooled encoder layer {args.cond_layer} -> answer-token input"
    out = [f"# adapter ({name}): {len(clips)} clips, {args.folds} speaker folds, seed {args.seed}, "
           f"{args.epochs} epochs, batch {args.batch}, AdamW lr {args.lr} cosine"]
    folds = [int(s) for s in args.only_folds.split(",")] if args.only_folds else list(range(args.folds))
    times = []
    for k in folds:
        torch.manual_seed(args.seed + k)
        feats = None
        if args.cond_layer is not None:
            pf = torch.stack([c["pooled"][args.cond_layer] for c in clips]).float()
            mu, sd = pf[fold != k].mean(0), pf[fold != k].std(0) + 1e-5
            feats = (pf - mu) / sd
        model = Adapted(w, args.prefix, args.rank, args.alpha, cross_kv_lora=args.cross_kv_lora,
                        cond_dim=0 if feats is None else feats.shape[1])
        n_par = model.n_trainable()
        tr = np.where(fold != k)[0]
        te = np.where(fold == k)[0]
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
        steps = args.epochs * math.ceil(len(tr) / args.batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.1)
        rng = np.random.default_rng(args.seed + k)
        t0 = time.time()
        for ep in range(args.epochs):
            perm = rng.permutation(tr)
            tot, corr, n = 0.0, 0, 0
            for s in range(0, len(perm), args.batch):
                idx = perm[s : s + args.batch]
                lg = model(*batch(clips, idx), None if feats is None else feats[idx])
                lp = C.masked_log_softmax(lg, mask_all[idx])
                yy = y_all[idx]
                loss = -(wt_all[idx] * lp[torch.arange(len(idx)), yy]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                tot += loss.item() * len(idx)
                corr += (lp.argmax(1) == yy).sum().item()
                n += len(idx)
            te_lg = predict(model, clips, te, feats)
            te_acc = (C.masked_log_softmax(torch.tensor(te_lg), mask_all[te]).argmax(1) == y_all[te]).float().mean()
            print(f"fold {k} epoch {ep + 1}/{args.epochs}: train loss {tot / n:.3f} acc {corr / n:.3f}, "
                  f"held-out acc {te_acc:.3f} ({time.time() - t0:.0f} s)", flush=True)
        times.append(time.time() - t0)
        logits[te] = te_lg
        # report after every fold, so a time-bounded run leaves results behind
        sel = ~np.isnan(logits[:, 0])
        sub = {"y": data["y"][sel], "mask": data["mask"][sel], "ds": ds[sel]}
        lines = list(out)
        C.report(f"{name} ({n_par} trainable params = {n_par * 4 / 1e6:.2f} MB f32; "
                 f"train {np.mean(times):.0f} s/fold; folds done {folds[: len(times)]})", logits[sel], sub, fold[sel], lines)
        if args.save_logits:
            np.savez(args.save_logits, logits=logits, fold=fold, y=data["y"], ds=ds)
        if args.out:
            open(args.out, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
