#!/usr/bin/env python3
"""Side-by-side CPU latency: emomon vs the reference engines, in one run.

Why one run: this machine is shared and noisy, so absolute times drift by tens of per
cent between runs; ratios measured in alternating rounds of one run are what can be
compared (issue 8, "Performance").

(a) Whisper base, one utterance of --seconds (default 5 s, not padded to 30 s), encoder
    plus the first decoder step, 2 threads:
      CTranslate2 f32 and int8 (`encode` + `generate(max_length=1)` with the
      <|startoftranscript|><|en|><|transcribe|><|notimestamps|> prompt), vs
      `emomon bench score --no-pad --prompt ''` (the same four-token prompt, first-token
      readout) on the same weights converted to a HF directory, in f32 and with
      `--quant q8` (int8 kernels).
(b) A small random Qwen2-Audio (audio tower d 256 × 4 layers, Qwen2 hidden 256 × 4
    layers, the fixture tokenizer), first-token readout of one utterance: transformers
    (processor + forward, torch 2 threads) vs `emomon bench score`.

Needs the reference venv (torch, transformers, ctranslate2); never run in CI. The
default paths follow `scripts/setup` (`$EMOMON_HOME`, else `$XDG_CACHE_HOME/emomon`,
else `~/.cache/emomon`): the HF directory it converts (`whisper-base/`) and, after
`scripts/setup --keep-downloads --force`, the CTranslate2 original
(`setup-work/ct2/`, holding model.bin); the binary defaults to `$CARGO_TARGET_DIR`
(else `target/`)`/release/emomon`.

    cargo build --release --bin emomon
    ~/.cache/emomon-venv/bin/python scripts/bench_reference.py [--whisper-ct2 DIR] [--skip-qwen]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("EMOMON_DATA", REPO.parent / "shared" / "data"))
THREADS = 2


def emomon_home() -> Path:
    """Where `scripts/setup` puts its files (the same rule as the script)."""
    if os.environ.get("EMOMON_HOME"):
        return Path(os.environ["EMOMON_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "emomon"


def default_binary() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return Path(target) / "release" / "emomon"


def speech(seconds: float) -> np.ndarray:
    """Real speech: the pyaudioanalysis clips concatenated and looped to `seconds`."""
    parts = [sf.read(str(DATA / "pyaudioanalysis" / f"{i:02d}.wav"), dtype="float32")[0] for i in range(4)]
    x = np.concatenate(parts)
    n = int(seconds * 16000)
    return np.resize(x, n).astype(np.float32)


def emomon_bench(binary: str, model: str, wav: Path, seconds: float, repeat: int, extra: list[str]) -> dict:
    cmd = [binary, "bench", "score", "--model", model, "--seconds", str(seconds), "--batch", "1",
           "--repeat", str(repeat), "--audio", str(wav), *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    stages = {m[0]: float(m[1]) for m in re.findall(r"^\s+(features|encoder|decoder|total)\s+([\d.]+)", out, re.M)}
    return {"cmd": " ".join(cmd), "out": out, "ms": stages}


def ct2_whisper(ct2_dir: str, audio: np.ndarray, compute_type: str, repeat: int) -> dict:
    import ctranslate2
    from transformers import WhisperFeatureExtractor

    model = ctranslate2.models.Whisper(ct2_dir, device="cpu", compute_type=compute_type, intra_threads=THREADS)
    fe = WhisperFeatureExtractor(feature_size=80)
    tok = json.loads((Path(ct2_dir) / "tokenizer.json").read_text())
    vocab = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    prompt = [vocab["<|startoftranscript|>"], vocab["<|en|>"], vocab["<|transcribe|>"], vocab["<|notimestamps|>"]]

    def once() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        feats = fe(audio, sampling_rate=16000, padding="longest", return_tensors="np").input_features
        n = feats.shape[-1] - feats.shape[-1] % 2
        sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[:, :, :n]))
        t1 = time.perf_counter()
        enc = model.encode(sv, to_cpu=False)
        t2 = time.perf_counter()
        model.generate(enc, [prompt], max_length=1, beam_size=1)
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    once()
    runs = [once() for _ in range(repeat)]
    med = [statistics.median(r[k] for r in runs) * 1e3 for k in range(3)]
    total = statistics.median(sum(r) for r in runs) * 1e3
    return {"ms": {"features": med[0], "encoder": med[1], "decoder": med[2], "total": total}}


def small_qwen2_audio(out_dir: Path) -> Path:
    import torch
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    torch.manual_seed(0)
    fixture = REPO / "models" / "fixtures" / "tiny-qwen2-audio"
    tok = json.loads((fixture / "tokenizer.json").read_text())
    vocab = {t["content"]: t["id"] for t in tok["added_tokens"]}
    config = Qwen2AudioConfig(
        audio_config={"model_type": "qwen2_audio_encoder", "num_mel_bins": 80, "encoder_layers": 4,
                      "encoder_attention_heads": 4, "encoder_ffn_dim": 1024, "d_model": 256,
                      "max_source_positions": 1500},
        text_config={"model_type": "qwen2", "vocab_size": 416, "hidden_size": 256, "intermediate_size": 1024,
                     "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "max_position_embeddings": 2048, "tie_word_embeddings": False,
                     "eos_token_id": vocab["<|im_end|>"]},
        audio_token_index=vocab["<|AUDIO|>"],
    )
    model = Qwen2AudioForConditionalGeneration(config).eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(fixture / f, out_dir / f)
    return out_dir


def transformers_qwen2_audio(model_dir: Path, audio: np.ndarray, question: str, repeat: int) -> dict:
    import torch
    from transformers import (PreTrainedTokenizerFast, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                              WhisperFeatureExtractor)

    torch.set_num_threads(THREADS)
    tok = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    processor = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok,
                                    chat_template=tok.chat_template)
    model = Qwen2AudioForConditionalGeneration.from_pretrained(str(model_dir)).eval()
    conv = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)

    def once() -> tuple[float, float]:
        t0 = time.perf_counter()
        inputs = processor(text=text, audio=[audio], sampling_rate=16000, return_tensors="pt")
        t1 = time.perf_counter()
        with torch.no_grad():
            model(**inputs, logits_to_keep=1)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    once()
    runs = [once() for _ in range(repeat)]
    return {"ms": {"features": statistics.median(r[0] for r in runs) * 1e3,
                   "model": statistics.median(r[1] for r in runs) * 1e3,
                   "total": statistics.median(sum(r) for r in runs) * 1e3}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emomon", default=str(default_binary()))
    ap.add_argument("--emomon-before", metavar="BINARY",
                    help="an earlier emomon build to time in the same rounds (before/after of a change)")
    ap.add_argument("--whisper-hf", default=str(emomon_home() / "whisper-base"))
    ap.add_argument("--whisper-ct2", default=str(emomon_home() / "setup-work" / "ct2"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median round is reported")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per engine per round")
    ap.add_argument("--skip-qwen", action="store_true")
    args = ap.parse_args()
    for flag, path in (("--whisper-hf", args.whisper_hf), ("--whisper-ct2", args.whisper_ct2), ("--emomon", args.emomon)):
        if not Path(path).exists():
            ap.error(f"{flag} {path} does not exist (see the header of this script for how to make it)")

    audio = speech(args.seconds)
    tmp = Path(tempfile.mkdtemp(prefix="emomon-bench-"))
    wav = tmp / "speech.wav"
    sf.write(str(wav), audio, 16000, subtype="FLOAT")
    question = "Which emotion does the speaker express: neutral, happy, sad, angry, fear, disgust, calm? Answer with one word."
    emomon_whisper_flags = ["--no-pad", "--prompt", "", "--labels", "neutral,happy,sad,angry,fear,disgust,surprise"]
    emomon_qwen_flags = ["--prompt", question, "--labels", "neutral,happy,sad,angry,fear,disgust,calm"]
    qdir = None if args.skip_qwen else small_qwen2_audio(tmp / "small-qwen2-audio")

    rounds: dict[str, list[dict]] = {}
    for r in range(args.rounds):
        res = {
            "ct2 f32": ct2_whisper(args.whisper_ct2, audio, "float32", args.repeat),
            "ct2 int8": ct2_whisper(args.whisper_ct2, audio, "int8", args.repeat),
            "emomon whisper": emomon_bench(args.emomon, args.whisper_hf, wav, args.seconds, args.repeat,
                                           emomon_whisper_flags),
            "emomon whisper q8": emomon_bench(args.emomon, args.whisper_hf, wav, args.seconds, args.repeat,
                                              [*emomon_whisper_flags, "--quant", "q8"]),
        }
        if args.emomon_before:
            res["emomon whisper (before)"] = emomon_bench(args.emomon_before, args.whisper_hf, wav, args.seconds,
                                                          args.repeat, emomon_whisper_flags)
        if qdir is not None:
            res["transformers qwen2-audio"] = transformers_qwen2_audio(qdir, audio, question, args.repeat)
            res["emomon qwen2-audio"] = emomon_bench(args.emomon, str(qdir), wav, args.seconds, args.repeat,
                                                     emomon_qwen_flags)
        for k, v in res.items():
            rounds.setdefault(k, []).append(v)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v['ms']['total']:.1f} ms" for k, v in res.items()), flush=True)

    print(f"\n{args.seconds:.1f} s utterance, {THREADS} threads, median of {args.rounds} rounds × {args.repeat} calls")
    med = {k: {s: statistics.median(r["ms"][s] for r in v) for s in v[0]["ms"]} for k, v in rounds.items()}
    for k, v in med.items():
        print(f"  {k:<26} " + "  ".join(f"{s} {ms:7.1f} ms" for s, ms in v.items()))
    e, c, q = med["emomon whisper"]["total"], med["ct2 f32"]["total"], med["ct2 int8"]["total"]
    print(f"  whisper base: emomon / ct2 f32 = {e / c:.2f}x, emomon / ct2 int8 = {e / q:.2f}x")
    # The reference's features (numpy, in Python) swing by 100 ms on a loaded machine;
    # the models alone are the steadier comparison.
    e8 = med["emomon whisper q8"]["total"]
    print(f"  whisper base: emomon q8 / ct2 int8 = {e8 / q:.2f}x, emomon q8 / emomon f32 = {e8 / e:.2f}x")
    em, cm, qm, e8m = (med[k]["encoder"] + med[k]["decoder"]
                       for k in ("emomon whisper", "ct2 f32", "ct2 int8", "emomon whisper q8"))
    print(f"  whisper base, encoder + decoder: emomon / ct2 f32 = {em / cm:.2f}x, emomon / ct2 int8 = {em / qm:.2f}x, "
          f"emomon q8 / ct2 int8 = {e8m / qm:.2f}x")
    if args.emomon_before:
        b = med["emomon whisper (before)"]["total"]
        print(f"  whisper base: emomon / emomon before = {e / b:.2f}x, emomon before / ct2 f32 = {b / c:.2f}x")
    if qdir is not None:
        t, m = med["transformers qwen2-audio"]["total"], med["emomon qwen2-audio"]["total"]
        print(f"  small qwen2-audio: emomon / transformers = {m / t:.2f}x")
    print(f"\nemomon command: {rounds['emomon whisper'][0]['cmd']}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
