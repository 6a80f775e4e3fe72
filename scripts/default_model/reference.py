#!/usr/bin/env python3
"""Reference scores of the default model (Whisper base + emotion adapter) on fixed clips.

An implementation independent of train.py's decoder: transformers' own
WhisperForConditionalGeneration runs the adapted prompt through `decoder_inputs_embeds`
(token embedding of <|startoftranscript|> + the adapter's shift; positions are added by
transformers), on clips of ../shared/data trimmed as adapter.json's `trim` says (as training was), with no 30 s padding --
what `EmotionWhisper::score` does in Rust. emomon's regression test
(tests/integration/default_model.rs) compares its label logits and probabilities with these.

    python scripts/default_model/reference.py [--adapter models/default] [--out tests/fixtures/default-model-ref.json]
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import load_file
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

import common as C
from encode_states import DATA, logmel, trim

ROOT = Path(__file__).resolve().parents[2]


def pick_clips(n_per_label: int = 1) -> list[dict]:
    """The first clip (manifest order) of every (dataset, label) pair: 19 clips."""
    rows = [r for r in csv.DictReader(open(DATA / "manifest.csv")) if r["label"]]
    seen: dict[tuple[str, str], int] = {}
    out = []
    for r in rows:
        key = (r["dataset"], r["label"])
        if seen.get(key, 0) < n_per_label:
            seen[key] = seen.get(key, 0) + 1
            out.append(r)
    return out


def readout_shift(meta: dict, ad: dict, taps: list[torch.Tensor]) -> torch.Tensor:
    """The soft-prompt shift from the encoder layer outputs `taps` ([T, d] each; 0 = the
    embedding output), written from adapter.json's description, not from readout.py."""
    ro = meta.get("readout", {"kind": "pooled"})
    if ro["kind"] == "pooled":
        p = torch.cat([torch.cat([taps[l].mean(0), taps[l].std(0)]) for l in meta["cond_layers"]])
        return ad["cond.weight"] @ p + ad["cond.bias"]
    if ro["kind"] != "asp":
        raise SystemExit(f"unknown readout kind {ro['kind']!r}")
    x = torch.stack(taps).double()  # [L, T, d]
    x = (x - ad["norm.mean"].double()[:, None]) / ad["norm.std"].double()[:, None]
    h = (ad["mix.weight"].double()[:, None, None] * x).sum(0)  # [T, d]
    e = torch.tanh(h @ ad["att.weight"].double().T + ad["att.bias"].double()) @ ad["att.v"].double()
    a = torch.softmax(e, 0)[:, None]
    mean = (a * h).sum(0)
    std = ((a * h * h).sum(0) - mean * mean).clamp(min=1e-6).sqrt()
    z = torch.cat([mean, std])
    if ro["mlp_hidden"]:
        z = torch.nn.functional.gelu(ad["hidden.weight"].double() @ z + ad["hidden.bias"].double())
    return (ad["out.weight"].double() @ z + ad["out.bias"].double()).float()


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, default=C.CACHE / "whisper-base")
    ap.add_argument("--adapter", type=Path, default=ROOT / "models" / "default")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "default-model-ref.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    meta = json.loads((args.adapter / "adapter.json").read_text())
    ad = load_file(str(args.adapter / "adapter.safetensors"))
    model = WhisperForConditionalGeneration.from_pretrained(args.base, torch_dtype=torch.float32).eval()
    fe = WhisperFeatureExtractor.from_pretrained(args.base)
    filters = torch.tensor(np.asarray(fe.mel_filters), dtype=torch.float32).T
    enc, dec = model.model.encoder, model.model.decoder
    sot = 50258
    labels, tokens, temp = meta["labels"], meta["label_tokens"], meta["temperature"]
    clips = []
    for r in pick_clips():
        audio, sr = sf.read(DATA / r["path"], dtype="float32")
        assert sr == 16000 and audio.ndim == 1, r["path"]
        if meta.get("trim"):
            audio = trim(audio, meta["trim"]["db"], meta["trim"]["margin_s"])
        feats = logmel(torch.from_numpy(audio), filters)[None]
        h = torch.nn.functional.gelu(enc.conv1(feats))
        h = torch.nn.functional.gelu(enc.conv2(h)).permute(0, 2, 1)
        h = h + enc.embed_positions.weight[: h.shape[1]]
        taps = [h[0]]
        for layer in enc.layers:
            h = layer(h, None)
            h = h[0] if isinstance(h, tuple) else h
            taps.append(h[0])
        states = enc.layer_norm(h)
        shift = readout_shift(meta, ad, taps)
        emb = dec.embed_tokens.weight[sot] + shift
        out = dec(inputs_embeds=emb[None, None], encoder_hidden_states=states, use_cache=False)
        logits = model.proj_out(out.last_hidden_state)[0, -1]
        z = logits[tokens].double()
        probs = torch.softmax(z / temp, 0)
        clips.append({"path": r["path"], "dataset": r["dataset"], "label": r["label"],
                      "seconds": round(len(audio) / 16000, 3),
                      "label_logits": [round(float(v), 5) for v in z],
                      "probs": [round(float(v), 6) for v in probs],
                      "top": labels[int(probs.argmax())]})
        print(f"{r['path']}: {r['label']} -> {clips[-1]['top']} ({float(probs.max()):.3f})", flush=True)
    ref = {"what": "transformers reference of emomon's default model (scripts/default_model/reference.py)",
           "base_safetensors_sha256": "2be218e4f1b5d055eee604bb1f92e17f5b36f316ff5366fb3db3a36c75258467",
           "adapter_sha256": __import__("hashlib").sha256((args.adapter / "adapter.safetensors").read_bytes()).hexdigest(),
           "labels": labels, "temperature": temp, "clips": clips}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
