#!/usr/bin/env python3
"""How far do int8 schemes move Whisper base's emotion-label logits? A simulation in
PyTorch (fake quantisation: values rounded to int8 grids, products in f32, which equals an
exact integer kernel up to f32 rounding), to choose the scheme before writing kernels.

Compares, against f32, the label logits at the answer position of
`<|startoftranscript|><|en|><|transcribe|><|notimestamps|> The speaker sounds` for the two
pyAudioAnalysis clips and N random clips of ../shared/data (padded to 30 s, as
transformers does). Schemes: weights per output channel or per group of k; activations
per token or per group; encoder only, encoder and the decoder's cross-attention
keys/values (groups of 32 only), or encoder and decoder. Results are in
docs/performance.md ("int8 accuracy").

Usage (reference venv, never in CI):
    EMOMON_WHISPER_BASE=DIR python scripts/q8_error_sim.py [N]
"""

import csv
import os
import sys

import numpy as np
import soundfile as sf
import torch
from tokenizers import Tokenizer
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

torch.set_num_threads(1)
MODEL = os.environ["EMOMON_WHISPER_BASE"]
DATA = os.environ.get("EMOMON_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised", "calm"]

model = WhisperForConditionalGeneration.from_pretrained(MODEL, dtype=torch.float32).eval()
extractor = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
prompt = [tok.token_to_id(t) for t in ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]]
prompt += tok.encode(" The speaker sounds").ids
label_ids = [tok.encode(" " + w).ids[0] for w in LABELS]

rows = list(csv.DictReader(open(os.path.join(DATA, "manifest.csv"))))
n = int(sys.argv[1]) if len(sys.argv) > 1 else 12
picked = ["pyaudioanalysis/00.wav", "pyaudioanalysis/03.wav"]
picked += [rows[i]["path"] for i in np.random.default_rng(0).choice(len(rows), n, replace=False)]
features = []
for rel in picked:
    audio, _ = sf.read(os.path.join(DATA, rel), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(1)
    features.append(extractor(audio, sampling_rate=16000, return_tensors="pt").input_features)


def label_logits() -> np.ndarray:
    with torch.no_grad():
        return np.array([
            model(input_features=f, decoder_input_ids=torch.tensor([prompt])).logits[0, -1, label_ids].numpy()
            for f in features
        ])


def fake_quant(x: torch.Tensor, group: int | None) -> torch.Tensor:
    """Symmetric int8 along the last axis, one scale per row or per `group` values."""
    shape = x.shape
    if group:
        x = x.reshape(*shape[:-1], shape[-1] // group, group)
    scale = x.abs().amax(-1, keepdim=True) / 127
    scale[scale == 0] = 1
    return ((x / scale).round().clamp(-127, 127) * scale).reshape(shape)


linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and name != "proj_out"}
originals = {name: m.forward for name, m in linears.items()}


def cross_kv(name: str) -> bool:
    """The decoder's cross-attention key/value projections (they read the encoder states)."""
    return ".encoder_attn.k_proj" in name or ".encoder_attn.v_proj" in name


def install(weight_group, act_group, decoder_too):
    """`decoder_too`: False (encoder only), True (all), or "cross-kv" (encoder and the
    decoder's cross-attention key/value projections)."""
    for name, m in linears.items():
        m.forward = originals[name]
        in_decoder = name.startswith("model.decoder")
        if in_decoder and not (decoder_too is True or (decoder_too == "cross-kv" and cross_kv(name))):
            continue
        w = fake_quant(m.weight.data.clone(), weight_group)
        m.forward = lambda x, w=w, b=m.bias: torch.nn.functional.linear(fake_quant(x, act_group), w, b)


reference = label_logits()
print(f"{len(picked)} clips; max/mean/p90 of max |Δ label logit| per clip; top-1 agreement")
SCOPES = {False: "encoder", "cross-kv": "encoder+cross k/v", True: "encoder+decoder"}
for decoder_too in [False, "cross-kv", True]:
    for weight_group, act_group, what in [(None, None, "W per channel, X per token (CT2/ORT)"),
                                          (64, None, "W per 64, X per token"),
                                          (64, 64, "W per 64, X per 64"),
                                          (32, 32, "W per 32, X per 32 (llama.cpp Q8_0)")]:
        if decoder_too == "cross-kv" and weight_group != 32:
            continue
        install(weight_group, act_group, decoder_too)
        quantised = label_logits()
        d = np.abs(quantised - reference).max(1)
        agree = (quantised.argmax(1) == reference.argmax(1)).mean()
        part = SCOPES[decoder_too]
        print(f"{part:18s} {what:40s} max {d.max():.3f} mean {d.mean():.3f} p90 {np.percentile(d, 90):.3f} top1 {agree:.3f}")
