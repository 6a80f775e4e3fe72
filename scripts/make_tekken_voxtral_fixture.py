#!/usr/bin/env python3
"""Builds models/fixtures/tiny-voxtral-tekken/ and its transformers reference.

Why: real Voxtral checkpoints ship Mistral's `tekken.json` and neither tokenizer.json
nor a chat template; transformers then tokenises with `MistralCommonBackend`
(mistral-common) inside `VoxtralProcessor.apply_chat_template`. emomon reads
tekken.json itself (models/src/tekken.rs) and lays the prompt out with its built-in
Voxtral template. models/tests/parity/tekken_voxtral.rs opens this directory with
`AlmScorer::open` and checks input ids, first-token label logits and greedy tokens
against what transformers does with the very same directory.

The directory holds a tiny randomly initialised `VoxtralForConditionalGeneration`
(tiny-voxtral's shape, but Voxtral's real 128 mel bins and a text vocabulary of the
4000 ids of models/fixtures/tiny-tekken/tekken.json, the output head untied as in
Voxtral Mini; ~2 MB, nearly all of it the two 4000 × 48 token matrices), config.json,
generation_config.json, preprocessor_config.json (WhisperFeatureExtractor, as Voxtral
ships it) and a copy of tekken.json — no tokenizer.json, no tokenizer_config.json.

Outputs, per clip i of tests/fixtures/audio (16 kHz PCM16, Apache-2.0; the last one is
demo.wav three times over, 33 s, so two 30 s chunks and 750 audio tokens):
`input_ids.{i}` (the processor's ids), `answer_logits.{i}` (last prompt position,
[vocab]), `greedy_tokens.{i}` and `greedy_logits.{i}` ([steps, vocab], from
`generate`), in models/fixtures/tiny-voxtral-tekken-ref.safetensors; metadata (labels,
question, clips, mistral-common's first token of each label form, greedy margins) in
tiny-voxtral-tekken-ref.json.

Regenerate (reference venv; nothing is downloaded):
    HF_HUB_OFFLINE=1 /root/.cache/emomon-venv/bin/python scripts/make_tekken_voxtral_fixture.py
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import mistral_common
import numpy as np
import soundfile as sf
import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    VoxtralConfig,
    VoxtralForConditionalGeneration,
    VoxtralProcessor,
    WhisperFeatureExtractor,
)

SEED = 1234 + 7
REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "models" / "fixtures"
OUT = FIX / "tiny-voxtral-tekken"
TEKKEN = FIX / "tiny-tekken" / "tekken.json"
# (file, times repeated): demo.wav three times is 33 s, i.e. two 30 s chunks.
CLIPS = [("tests/fixtures/audio/03.wav", 1), ("tests/fixtures/audio/12.wav", 1), ("tests/fixtures/audio/demo.wav", 3)]
LABELS = ["neutral", "happy", "sad", "angry"]
QUESTION = "Which emotion does the speaker express: neutral, happy, sad, angry? Answer with one word."
GREEDY_STEPS = 4
VOCAB = 4000
AUDIO_TOKEN = 24


def build_model() -> VoxtralForConditionalGeneration:
    gen = torch.Generator().manual_seed(SEED)
    config = VoxtralConfig(
        audio_config={
            "model_type": "voxtral_encoder",
            "vocab_size": VOCAB,
            "hidden_size": 32,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_mel_bins": 128,
            "max_source_positions": 1500,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": VOCAB,
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 100000000.0},
            "tie_word_embeddings": False,
            "attention_bias": False,
            "mlp_bias": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        audio_token_id=AUDIO_TOKEN,
        projector_hidden_act="gelu",
    )
    model = VoxtralForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_positions.weight"):
                continue
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif name.endswith("lm_head.weight"):
                # Spread-out logits: greedy tokens robust to float noise.
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.shape[1] * (p.shape[2] if p.ndim == 3 else 1)
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))
    return model


def main() -> None:
    torch.manual_seed(SEED)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    model = build_model()
    model.save_pretrained(str(OUT), safe_serialization=True)
    model.generation_config.save_pretrained(str(OUT))
    WhisperFeatureExtractor(feature_size=128).save_pretrained(str(OUT))
    shutil.copy(TEKKEN, OUT / "tekken.json")
    for stray in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "processor_config.json"]:
        assert not (OUT / stray).exists(), stray

    # As transformers runs a real Voxtral directory: processor (feature extractor +
    # MistralCommonBackend from tekken.json) and model, both from the directory.
    processor = VoxtralProcessor.from_pretrained(str(OUT))
    tok_name = type(processor.tokenizer).__name__
    model = VoxtralForConditionalGeneration.from_pretrained(str(OUT), dtype=torch.float32).eval()
    raw = processor.tokenizer.tokenizer.instruct_tokenizer.tokenizer
    label_ids = {
        form: raw.encode(form, bos=False, eos=False)
        for label in LABELS
        for form in (label, label.capitalize())
    }

    ref: dict[str, torch.Tensor] = {}
    clips = []
    tmp = tempfile.TemporaryDirectory()
    for i, (rel, repeat) in enumerate(CLIPS):
        pcm, sr = sf.read(str(REPO / rel), dtype="int16")
        assert sr == 16000 and pcm.ndim == 1
        samples = np.tile(pcm, repeat)
        wav = Path(tmp.name) / f"clip{i}.wav"
        sf.write(str(wav), samples, 16000, subtype="PCM_16")
        conversation = [{
            "role": "user",
            "content": [
                {"type": "audio", "path": str(wav)},
                {"type": "text", "text": QUESTION},
            ],
        }]
        inputs = processor.apply_chat_template(conversation, add_generation_prompt=True)
        ids = inputs["input_ids"]
        assert ids.shape[0] == 1
        n_audio = int((ids[0] == AUDIO_TOKEN).sum())
        with torch.no_grad():
            out = model(**inputs)
            g = model.generate(
                **inputs, max_new_tokens=GREEDY_STEPS, do_sample=False,
                output_logits=True, return_dict_in_generate=True,
            )
        answer = out.logits[0, -1]
        steps = torch.stack([l[0] for l in g.logits])
        tokens = g.sequences[0, ids.shape[1]:]
        assert torch.allclose(steps[0], answer, atol=1e-4), (steps[0] - answer).abs().max()
        top2 = steps.topk(2, dim=-1).values
        margin = float((top2[:, 0] - top2[:, 1]).min())
        ref[f"input_ids.{i}"] = ids[0].to(torch.long)
        ref[f"answer_logits.{i}"] = answer.contiguous()
        ref[f"greedy_tokens.{i}"] = tokens.to(torch.long).contiguous()
        ref[f"greedy_logits.{i}"] = steps.contiguous()
        clips.append({
            "path": rel,
            "repeat": repeat,
            "samples": int(samples.shape[0]),
            "input_features": list(inputs["input_features"].shape),
            "prompt_tokens": int(ids.shape[1]),
            "audio_tokens": n_audio,
            "greedy_tokens": tokens.tolist(),
            "greedy_text": raw.decode(tokens.tolist()),
            "min_greedy_margin": margin,
            "prompt_text_head": processor.tokenizer.decode(ids[0][:4].tolist()),
        })
        print(f"clip {i} {rel}: {ids.shape[1]} ids ({n_audio} [AUDIO]), greedy {tokens.tolist()}, margin {margin:.3f}")

    save_file(ref, str(FIX / "tiny-voxtral-tekken-ref.safetensors"))
    meta = {
        "generator": "scripts/make_tekken_voxtral_fixture.py",
        "transformers": transformers.__version__,
        "mistral_common": mistral_common.__version__,
        "tokenizer_class": tok_name,
        "labels": LABELS,
        "question": QUESTION,
        "greedy_steps": GREEDY_STEPS,
        "label_token_ids": label_ids,
        "clips": clips,
    }
    (FIX / "tiny-voxtral-tekken-ref.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n")
    print(f"tokenizer: {tok_name}; label ids {label_ids}")


if __name__ == "__main__":
    main()
