#!/usr/bin/env python3
"""Cache Whisper encoder states for every labelled clip of the shared manifest.

Research helper for issue 6 (needs torch + transformers; the product path does not).
The encoder runs on the clip's real length (no 30 s padding): transformers'
WhisperEncoder insists on 3000 mel frames, so its own modules are called here with the
position table sliced to the output length -- the same unpadded mode as
emomon-models' Rust encoder. Log-mel is Whisper's (hann 400, hop 160, last STFT frame
dropped, log10 clamp to max-8, (x+4)/4) computed on the unpadded clip.

Silence trimming (--trim-db, default 40): leading/trailing 10 ms frames more than
TRIM_DB below the clip's loudest frame are cut, keeping 0.15 s margins -- what the VAD
segmenter hands the scorer live, and it halves RAVDESS's encoder cost (~1 s silence at
each end). --ravdess-repetition keeps one of RAVDESS's two repetitions (a time-bounded
subset: all 16 actors, both statements, all emotions and intensities).

Output (outside the repo): STATES_DIR/<model-name>.pt with, per clip, the path, dataset,
speaker, label, the final encoder states [T, d] (float16), mean+std pooled states of
every layer output ([n_layers+1, 2d], float32; index -1 = final, after ln_post), every
layer's frame states ([n_layers+1, T, d] float16: the embedding output and each layer's
output before ln_post -- what the layer-weighted adapter reads) and the decoder's
cross-attention k/v of the final states ([layers, 2, T, d] float16).

    python scripts/default_model/encode_states.py [--model DIR] [--out FILE]
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import WhisperFeatureExtractor, WhisperModel

import common as C
import corruptions

DATA = Path(os.environ.get("EMOMON_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emomon"


def logmel(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    window = torch.hann_window(400)
    spec = torch.stft(x, 400, 160, window=window, return_complex=True)  # center, reflect
    power = spec[..., :-1].abs() ** 2
    mel = filters @ power
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0


@torch.inference_mode()
def encode(enc, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(final states [T, d], pooled mean+std of every layer [L+2, 2d], layer states [L+1, T, d])."""
    h = torch.nn.functional.gelu(enc.conv1(feats[None]))
    h = torch.nn.functional.gelu(enc.conv2(h)).permute(0, 2, 1)
    h = h + enc.embed_positions.weight[: h.shape[1]]
    taps = [h[0]]
    for layer in enc.layers:
        h = layer(h, None)
        h = h[0] if isinstance(h, tuple) else h
        taps.append(h[0])
    h = enc.layer_norm(h)
    pooled = [torch.cat([t.mean(0), t.std(0)]) for t in taps + [h[0]]]
    return h[0], torch.stack(pooled), torch.stack(taps)


def trim(audio: np.ndarray, db: float, margin_s: float = 0.15) -> np.ndarray:
    n = len(audio) // 160
    if db <= 0 or n < 3:
        return audio
    e = 10 * np.log10((audio[: n * 160].reshape(n, 160) ** 2).mean(1) + 1e-12)
    loud = np.where(e > e.max() - db)[0]
    m = int(margin_s * 16000)
    return audio[max(0, loud[0] * 160 - m) : min(len(audio), (loud[-1] + 1) * 160 + m)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=CACHE / "whisper-base")
    ap.add_argument("--out", type=Path, default=CACHE / "states" / "whisper-base-unpadded.pt")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: a fixed summation order, and no OpenMP spinning when other jobs share the CPU)")
    ap.add_argument("--trim-db", type=float, default=40.0, help="0 = no trimming")
    ap.add_argument("--ravdess-repetition", default="", help="e.g. 01: keep only that repetition")
    ap.add_argument("--datasets", default="", help="comma list: encode only these datasets (default: all)")
    ap.add_argument("--no-cross-kv", action="store_true",
                    help="skip the decoder cross-attention k/v of every layer (needed by train_adapter.py)")
    ap.add_argument("--no-layer-states", action="store_true",
                    help="skip every layer's frame states (needed by the layer-weighted adapter)")
    ap.add_argument("--corrupt-copies", type=int, default=0,
                    help="encode K corrupted copies of every clip instead of the clean clip (augmentation): "
                         "each a random corruption of corruptions.random_spec; babble from other speakers "
                         "of the clip's own outer speaker fold, so no held-out voice leaks into training")
    ap.add_argument("--augment-mix", choices=corruptions.MIXES, default="single",
                    help="how --corrupt-copies are drawn (corruptions.random_spec): `single` = one "
                         "corruption each, `room` = reverberation, noise and gain together")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)

    model = WhisperModel.from_pretrained(args.model, torch_dtype=torch.float32).eval()
    enc = model.encoder
    fe = WhisperFeatureExtractor.from_pretrained(args.model)
    filters = torch.tensor(np.asarray(fe.mel_filters), dtype=torch.float32).T  # [n_mels, 201]

    rows = sorted((r for r in csv.DictReader(open(DATA / "manifest.csv")) if r["label"]), key=lambda r: r["path"])
    if args.ravdess_repetition:
        rows = [r for r in rows if r["dataset"] != "ravdess"
                or f"repetition={args.ravdess_repetition}" in r["extra"].split(";")]
    if args.datasets:
        keep = set(args.datasets.split(","))
        rows = [r for r in rows if r["dataset"] in keep]
    out = {"model": str(args.model), "padding": "none (real clip length)", "trim_db": args.trim_db,
           "ravdess_repetition": args.ravdess_repetition or "all", "corrupt_copies": args.corrupt_copies, "clips": []}
    if args.corrupt_copies and args.augment_mix != "single":
        out["augment_mix"] = args.augment_mix  # absent for `single`: older files stay as they were
    jobs = [(r, None) for r in rows]
    if args.corrupt_copies:
        fold = C.speaker_folds(rows, 4, 0)  # the outer folds of train.py
        raw = {r["path"]: sf.read(DATA / r["path"], dtype="float32")[0] for r in rows}
        jobs = []
        for i, r in enumerate(rows):
            rng = corruptions.rng_for(r["path"], "augment")
            others = [raw[o["path"]] for j, o in enumerate(rows)
                      if fold[j] == fold[i] and o["dataset"] == r["dataset"] and o["speaker"] != r["speaker"]]
            jobs += [(r, (corruptions.random_spec(rng, args.augment_mix), others)) for _ in range(args.corrupt_copies)]
    dec = model.decoder
    t0 = time.time()
    for i, (r, corrupt) in enumerate(jobs):
        audio, sr = sf.read(DATA / r["path"], dtype="float32")
        if sr != 16000 or audio.ndim != 1:
            raise SystemExit(f"{r['path']}: expected 16 kHz mono, got {sr} Hz, shape {audio.shape}")
        if corrupt is not None:
            # corrupted before trimming: the microphone hears the room before the VAD cuts
            audio = corruptions.apply(audio, corrupt[0], f"{r['path']}#{i}", corrupt[1])
        audio = trim(audio, args.trim_db)
        feats = logmel(torch.from_numpy(audio), filters)
        states, pooled, taps = encode(enc, feats)
        clip = {
            "path": r["path"], "dataset": r["dataset"], "speaker": r["speaker"], "label": r["label"],
            "seconds": len(audio) / 16000, "states": states.to(torch.float16).clone(), "pooled": pooled.clone(),
        }
        if corrupt is not None:
            clip["corruption"] = corrupt[0]
        if not args.no_layer_states:
            clip["layers"] = taps.to(torch.float16).clone()
        if not args.no_cross_kv:
            with torch.inference_mode():
                kv = [torch.stack([l.encoder_attn.k_proj(states), l.encoder_attn.v_proj(states)]) for l in dec.layers]
            clip["cross_kv"] = torch.stack(kv).to(torch.float16).clone()  # [layers, 2, T, d]
        out["clips"].append(clip)
        if (i + 1) % 100 == 0 or i + 1 == len(jobs):
            el = time.time() - t0
            print(f"{i + 1}/{len(jobs)} clips, {el:.0f} s ({el / (i + 1) * 1000:.0f} ms/clip)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
