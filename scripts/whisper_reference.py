#!/usr/bin/env python3
"""transformers reference outputs of a *real* Whisper HF directory on shared clips, for
the Rust parity test `models/tests/parity/whisper_real.rs`.

Stores (small enough to commit): the audio of each clip (f32), the first 64 encoder
frames, full-vocabulary logits of the first greedy steps, and the plain-argmax greedy
tokens (no logits processors: the Rust side implements the same loop). The weights
themselves are not committed; see scripts/ct2_whisper_to_hf.py.

Usage (reference venv, never in CI):
    python scripts/whisper_reference.py TINY_EN_DIR models/fixtures/whisper-tiny-en-ref.safetensors
    python scripts/whisper_reference.py BASE_DIR models/fixtures/whisper-base-ref.safetensors --full-logit-steps 1,1
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("EMOMON_DATA", REPO.parent / "shared" / "data"))
# pyAudioAnalysis clips (Apache-2.0, so their audio may be committed as test data).
CLIPS = ["pyaudioanalysis/00.wav", "pyaudioanalysis/03.wav"]
MAX_STEPS = 40
ENC_FRAMES = 64


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--full-logit-steps", default="2,1", help="per clip, steps whose full logits are stored")
    args = ap.parse_args()
    full_steps = [int(x) for x in args.full_logit_steps.split(",")]
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration.from_pretrained(str(args.model_dir), dtype=torch.float32).eval()
    cfg = model.config
    fe = WhisperFeatureExtractor(feature_size=cfg.num_mel_bins)
    tok = Tokenizer.from_file(str(args.model_dir / "tokenizer.json"))
    # English-only models: <|startoftranscript|><|notimestamps|>; multilingual ones also
    # need the language and task: <|startoftranscript|><|en|><|transcribe|><|notimestamps|>.
    prompt = [cfg.decoder_start_token_id]
    if cfg.vocab_size >= 51865:
        prompt += [tok.token_to_id("<|en|>"), tok.token_to_id("<|transcribe|>")]
    prompt.append(tok.token_to_id("<|notimestamps|>"))
    eos = cfg.eos_token_id
    ref: dict[str, torch.Tensor] = {"prompt": torch.tensor(prompt, dtype=torch.long)}
    meta = {"model_dir": str(args.model_dir), "clips": [], "prompt": prompt, "eos": eos}
    for i, rel in enumerate(CLIPS):
        audio, sr = sf.read(str(DATA / rel), dtype="float32")
        assert sr == 16000 and audio.ndim == 1, rel
        ref[f"audio.{i}"] = torch.from_numpy(np.ascontiguousarray(audio))
        x = fe(audio, sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():
            enc = model.model.encoder(x).last_hidden_state
            ref[f"encoder_head.{i}"] = enc[0, :ENC_FRAMES].contiguous()
            tokens = list(prompt)
            margins = []
            for step in range(MAX_STEPS):
                logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([tokens])).logits[0, -1]
                if step < full_steps[i]:
                    ref[f"step_logits.{i}.{step}"] = logits.contiguous()
                top2 = torch.topk(logits, 2).values
                margins.append(float(top2[0] - top2[1]))
                tokens.append(int(logits.argmax()))
                if tokens[-1] == eos:
                    break
        new = tokens[len(prompt) :]
        ref[f"greedy_tokens.{i}"] = torch.tensor(new, dtype=torch.long)
        meta["clips"].append(
            {"file": rel, "samples": len(audio), "tokens": new, "text": tok.decode(new), "min_margin": min(margins)}
        )
    save_file({k: v.detach().contiguous() for k, v in ref.items()}, str(args.out))
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
