#!/usr/bin/env python3
"""Capture real vLLM answers for emomon's remote-scoring tests (replayed in CI).

Sends the requests emomon sends (src/remote/request.rs) for a few clips to a running
vLLM server that serves models/fixtures/tiny-qwen2-audio-vllm, and writes, under
tests/fixtures/remote/ (committed, small):

* ``tokenize.json`` — `/tokenize` and `/detokenize` answers for the label forms, keyed
  by the text (or ids) asked;
* ``first-token.{clip}.json`` — the chat completion of `first-token` (max_tokens 1,
  `logprob_token_ids` = the label tokens) for each clip;
* ``first-token-top.{clip}.json`` — the same without `logprob_token_ids`: a server's
  plain `top_logprobs` list (the fallback path);
* ``token-average.{clip}.json`` / ``text.{clip}.json`` — a greedy answer of a few
  tokens with per-position label logprobs.

Audio is never stored: only the server's answers. Usage (scripts/vllm_e2e runs it):

    python3 scripts/capture_vllm.py http://127.0.0.1:8123/v1 tiny-qwen2-audio-vllm
"""

from __future__ import annotations

import base64
import io
import json
import sys
import urllib.request
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "remote"
DATA = REPO.parent / "shared" / "data" / "pyaudioanalysis"
CLIPS = ["00.wav", "02.wav", "05.wav"]
# The tiny fixture tokenizer splits "sad" and "surprise" into "s"+… (and "Sad",
# "Surprise" into "S"+…): they share first tokens, which the verbaliser rightly rejects.
# The tests use the default labels without "surprise".
LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust"]
QUESTION = (
    "Which emotion does the speaker express: " + ", ".join(LABELS) + "? Answer with one word."
)
TEXT_QUESTION = (
    "How strongly does the speaker express each of these emotions: "
    + ", ".join(LABELS)
    + '? Answer only with percentages that sum to 100, like "neutral 60%, happy 40%".'
)


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def wav_b64(path: Path, seconds: float = 4.0) -> str:
    """The clip's first seconds as 16 kHz mono PCM16 WAV (as emomon sends it)."""
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        frames = w.readframes(int(16000 * seconds))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as o:
        o.setnchannels(1)
        o.setsampwidth(2)
        o.setframerate(16000)
        o.writeframes(frames)
    return base64.b64encode(buf.getvalue()).decode()


def chat(base, model, audio, question, max_tokens, label_ids):
    body = {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
                    {"type": "text", "text": question},
                ],
            }
        ],
        "max_tokens": max_tokens,
        "n": 1,
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": 20,
        "return_tokens_as_token_ids": True,
        "stream": False,
    }
    if label_ids is not None:
        body["logprob_token_ids"] = label_ids
    answer = post(f"{base}/chat/completions", body)
    # Drop what changes from run to run and means nothing to the client.
    for k in ["id", "created", "system_fingerprint", "usage", "prompt_logprobs", "kv_transfer_params"]:
        answer.pop(k, None)
    return answer


def main() -> None:
    base, model = sys.argv[1].rstrip("/"), sys.argv[2]
    root = base.removesuffix("/v1")
    OUT.mkdir(parents=True, exist_ok=True)
    tokenize = {}
    label_ids = set()
    for label in LABELS:
        for form in [label, label.capitalize()]:
            ids = post(
                f"{root}/tokenize", {"model": model, "prompt": form, "add_special_tokens": False}
            )["tokens"]
            tokenize[form] = ids
            first = ids[0]
            label_ids.add(first)
            text = post(f"{root}/detokenize", {"model": model, "tokens": [first]})["prompt"]
            tokenize[f"ids:{first}"] = text
    label_ids = sorted(label_ids)
    (OUT / "tokenize.json").write_text(json.dumps(tokenize, indent=1) + "\n")
    for clip in CLIPS:
        stem = clip.removesuffix(".wav")
        audio = wav_b64(DATA / clip)
        runs = {
            "first-token": (QUESTION, 1, label_ids),
            "first-token-top": (QUESTION, 1, None),
            "token-average": (QUESTION, 4, label_ids),
            "text": (TEXT_QUESTION, 6, label_ids),
        }
        for name, (q, n, ids) in runs.items():
            answer = chat(base, model, audio, q, n, ids)
            (OUT / f"{name}.{stem}.json").write_text(json.dumps(answer) + "\n")
    print(f"captured {len(CLIPS)} clips into {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
