#!/usr/bin/env python3
"""Builds models/fixtures/tiny-tekken/: a small Mistral `tekken.json` and what
mistral-common (the reference for Voxtral prompts) makes of it.

Why: real Voxtral checkpoints ship `tekken.json` (Mistral's tiktoken-style BPE), not a
Hugging Face `tokenizer.json`, and transformers formats Voxtral prompts with
mistral-common rather than a Jinja template. emomon reads tekken.json itself
(models/src/tekken.rs) and lays out Voxtral prompts with its built-in template
(`chat::VOXTRAL_TEMPLATE`); models/tests/parity/tekken_fixtures.rs checks both against the
ids recorded here.

The vocabulary is the first --ranks ranks of the tekken file shipped inside the
mistral-common wheel (Apache-2.0), so merges, byte fallback and the split pattern are
the real ones, only fewer. The audio section and the special-token ranks of [AUDIO]
(24) and [BEGIN_AUDIO] (25) follow Voxtral Mini's tekken.json.

    python -m venv /tmp/mc && /tmp/mc/bin/pip install mistral-common numpy
    /tmp/mc/bin/python scripts/make_tekken_fixture.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mistral_common
import numpy as np
from mistral_common.protocol.instruct.chunk import AudioChunk, RawAudio, TextChunk
from mistral_common.protocol.instruct.messages import UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from mistral_common.tokens.tokenizers.audio import Audio

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "models" / "fixtures" / "tiny-tekken"
NUM_SPECIAL = 1000
SPECIALS = {
    0: "<unk>", 1: "<s>", 2: "</s>", 3: "[INST]", 4: "[/INST]", 5: "[AVAILABLE_TOOLS]",
    6: "[/AVAILABLE_TOOLS]", 7: "[TOOL_RESULTS]", 8: "[/TOOL_RESULTS]", 9: "[TOOL_CALLS]",
    10: "[IMG]", 11: "<pad>", 12: "[IMG_BREAK]", 13: "[IMG_END]", 14: "[PREFIX]",
    15: "[MIDDLE]", 16: "[SUFFIX]", 17: "[SYSTEM_PROMPT]", 18: "[/SYSTEM_PROMPT]",
    19: "[TOOL_CONTENT]", 24: "[AUDIO]", 25: "[BEGIN_AUDIO]", 34: "[TRANSCRIBE]",
}

TEXTS = [
    "Which emotion does the speaker express: neutral, happy, sad, angry? Answer with one word.",
    "happy", " happy", "Happy", " sad", "angry 60%, neutral 40%",
    "Wie fühlt sich die Sprecherin? Ärger, Freude — oder Trauer?",
    "  two  spaces\tand a tab\nnew line\n\n",
    "numbers 1234567 and émojis 🙂🎙️",
    "brackets [INST-like] but not special",
]
QUESTIONS = [
    "Which emotion does the speaker express: neutral, happy, sad, angry? Answer with one word.",
    "How strongly does the speaker express each of these emotions: happy, sad? Answer only with percentages.",
]
SECONDS = [0.5, 5.0, 30.0, 31.0]


def tekken(source: Path, ranks: int) -> dict:
    full = json.loads(source.read_text())
    specials = [
        {"rank": r, "token_str": SPECIALS.get(r, f"<SPECIAL_{r}>"), "is_control": True}
        for r in range(NUM_SPECIAL)
    ]
    return {
        "config": {
            "pattern": full["config"]["pattern"],
            "num_vocab_tokens": ranks,
            "default_vocab_size": NUM_SPECIAL + ranks,
            "default_num_special_tokens": NUM_SPECIAL,
            "version": "v7",
        },
        "vocab": full["vocab"][:ranks],
        "special_tokens": specials,
        "audio": {
            "sampling_rate": 16000,
            "frame_rate": 12.5,
            "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400},
            "chunk_length_s": 30.0,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=3000, help="non-special vocabulary entries kept")
    args = ap.parse_args()
    source = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "tekken.json"
    path.write_text(json.dumps(tekken(source, args.ranks), ensure_ascii=False))

    mt = MistralTokenizer.from_file(str(path))
    raw = mt.instruct_tokenizer.tokenizer
    encodings = [{"text": t, "ids": raw.encode(t, bos=False, eos=False)} for t in TEXTS]
    prompts = []
    for q in QUESTIONS:
        for s in SECONDS:
            audio = Audio(audio_array=np.zeros(int(s * 16000), dtype=np.float32), sampling_rate=16000, format="wav")
            request = ChatCompletionRequest(messages=[UserMessage(content=[
                AudioChunk(input_audio=RawAudio.from_audio(audio)), TextChunk(text=q)])])
            tokenized = mt.encode_chat_completion(request)
            prompts.append({
                "question": q,
                "samples": int(s * 16000),
                "ids": tokenized.tokens,
                "text": raw.decode(tokenized.tokens, special_token_policy=SpecialTokenPolicy.KEEP),
            })
    # The whole shipped file too (v3: no special-token list, 131k ranks), for the test
    # that runs when EMOMON_TEKKEN points at it (.ci/run extracts it from the wheel).
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer
    whole = Tekkenizer.from_file(str(source))
    full = [{"text": t, "ids": whole.encode(t, bos=False, eos=False)} for t in TEXTS]
    ref = {
        "generator": "scripts/make_tekken_fixture.py",
        "mistral_common": mistral_common.__version__,
        "source": f"mistral_common/data/{source.name}, first {args.ranks} ranks",
        "encodings": encodings,
        "full_source": f"mistral_common/data/{source.name}",
        "full_encodings": full,
        "voxtral_prompts": prompts,
    }
    (OUT / "reference.json").write_text(json.dumps(ref, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes) and reference.json")
    for p in prompts:
        n = p["ids"].count(24)
        print(f"  {p['samples'] / 16000:5.1f} s: {len(p['ids'])} ids, {n} [AUDIO]; {p['text'][:60]!r}…")


if __name__ == "__main__":
    main()
