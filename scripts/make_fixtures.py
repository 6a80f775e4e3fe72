#!/usr/bin/env python3
"""Build the tiny reference fixtures that emomon-models' Rust tests compare against.

What it writes (all under models/fixtures/, committed, a few MB in all):

* ``tiny-whisper/`` — a Hugging Face directory of a *randomly initialised*
  ``WhisperForConditionalGeneration`` (d_model 64, 2 encoder + 2 decoder layers,
  4 heads, 80 mel bins, the real 1500/3000-frame geometry): config.json,
  model.safetensors (f32, tied output projection as HF saves it),
  generation_config.json, preprocessor_config.json, tokenizer.json.
* ``tiny-whisper-dtypes/`` — the same weights stored as f16 and bf16
  (model.f16.safetensors, model.bf16.safetensors) to test dtype conversion on load.
* ``tiny-whisper-ref.safetensors`` — inputs and reference outputs:
  ``audio.{i}`` (f32 samples of clip i), ``mel80.{i}`` / ``mel128.{i}`` (log-mel
  without padding, [bins, frames]), ``mel80_padded.0`` (30 s padded, [80, 3000]),
  ``encoder.0`` ([1500, 64]), ``prompt`` (i64 token ids), ``prompt_logits.{i}``
  ([prompt_len, vocab]), ``greedy_tokens.{i}`` and ``greedy_logits.{i}``
  ([steps, vocab], logits of the last position at each greedy step).
* ``tiny-whisper-ref.json`` — human-readable metadata (clips, lengths, margins).

The tokenizer is an honest miniature of Whisper's: a byte-level BPE trained by the
``tokenizers`` library on a small fixed corpus of emotion words and prompt phrases
(so leading-space variants such as "Ġhappy" exist, as in GPT-2/Whisper vocabularies),
followed by Whisper's special tokens (<|endoftext|>, <|startoftranscript|>, a few
language tokens, <|transcribe|>, <|notimestamps|>, ...). Ids are not Whisper's ids.

No model hub is involved: weights are random (fixed seed) and re-drawn with a
larger spread than HF's init_std=0.02 so that logits are not near-ties (greedy
tokens must be robust to 1e-5 numerical noise; the minimum top-1/top-2 margin is
printed and stored in the metadata).

Regenerate (needs the reference venv, never used in CI):
    /root/.cache/emomon-venv/bin/python scripts/make_fixtures.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

SEED = 1234
REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "models" / "fixtures"
DATA = Path(os.environ.get("EMOMON_DATA", REPO.parent / "shared" / "data"))

# (file, number of samples kept). Lengths are deliberately not multiples of the
# 160-sample hop so framing edge cases are covered.
CLIPS = [
    ("pyaudioanalysis/00.wav", 32000),
    ("pyaudioanalysis/02.wav", 40037),
    ("pyaudioanalysis/01.wav", 20811),
]

SPECIALS = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|de|>",
    "<|ur|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nospeech|>",
    "<|notimestamps|>",
    # Qwen2-Audio's chat/audio markers (ids 411..415 here).
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_bos|>",
    "<|AUDIO|>",
    "<|audio_eos|>",
]

CORPUS = [
    "neutral happy sad angry fear disgust surprise boredom calm",
    " neutral happy sad angry fear disgust surprise boredom calm",
    "Neutral Happy Sad Angry Fear Disgust Surprise Boredom Calm",
    "The speaker sounds happy. The speaker sounds sad. The speaker sounds angry.",
    "Which emotion does the speaker express? Answer with one word.",
    "emotion: neutral, emotion: happy, emotion: sad, emotion: angry, emotion: fear",
    "happy 60%, neutral 30%, sad 10%. angry 50%, disgust 25%, fear 25%.",
    "Kids are talking by the door. Dogs are sitting by the door.",
    "the a an and is are was of to in it that this with for on",
]

N_GREEDY = 8

# First-token scorer reference: labels, verbaliser forms and temperatures. The Rust
# scorer must reproduce these distributions from the same logits (max |Δ| ≤ 1e-4).
LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]
FORMS = [" {}", " {cap}"]  # leading-space lower case and capitalised
TEMPERATURES = [1.0, 0.5]


def label_first_tokens(tok: Tokenizer) -> list[list[int]]:
    """Distinct first token ids of each label's verbalised forms (in form order).

    A form whose first token is only whitespace (e.g. " Neutral" → "Ġ", "Neutral") says
    nothing about the label and is skipped, as the Rust verbaliser does.
    """
    out = []
    for label in LABELS:
        ids: list[int] = []
        for form in FORMS:
            text = form.format(label, cap=label[:1].upper() + label[1:])
            first = tok.encode(text, add_special_tokens=False).ids[0]
            if tok.decode([first]).strip() == "":
                continue
            if first not in ids:
                ids.append(first)
        if not ids:
            sys.exit(f"label {label!r} has no informative first token")
        out.append(ids)
    flat = [i for ids in out for i in ids]
    if len(flat) != len(set(flat)):
        sys.exit(f"label first tokens collide: {out}")
    return out


def token_average_scores(step_logits: np.ndarray, first: list[list[int]]):
    """Paper's token-level conceptualization as emomon defines it: per generated position the
    label probability under the full-vocabulary softmax (summed over its first tokens),
    averaged over positions, then phi_e = z_e / sum_n z_n. Also returns the mean label logit."""
    x = step_logits.astype(np.float64)
    log_norm = np.logaddexp.reduce(x, axis=1)
    z = np.stack([np.logaddexp.reduce(x[:, ids], axis=1) for ids in first], axis=1)  # [steps, labels]
    p = np.exp(z - log_norm[:, None]).mean(axis=0)
    return z.mean(axis=0), p / p.sum()


def first_token_scores(logits: np.ndarray, first: list[list[int]], temperature: float):
    """Label logit = logsumexp over its forms' first tokens; probs = softmax(z / T)."""
    z = np.array([np.logaddexp.reduce(logits[ids].astype(np.float64)) for ids in first])
    e = np.exp((z - z.max()) / temperature)
    return z, e / e.sum()


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=[],
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.add_special_tokens(SPECIALS)
    return tok


def load_clip(rel: str, n: int) -> np.ndarray:
    path = DATA / rel
    audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    if sr != 16000 or audio.ndim != 1:
        sys.exit(f"{path}: expected 16 kHz mono, got sr={sr} shape={audio.shape}")
    if len(audio) < n:
        sys.exit(f"{path}: only {len(audio)} samples, need {n}")
    return np.ascontiguousarray(audio[:n])


def randomise(model: WhisperForConditionalGeneration, gen: torch.Generator) -> None:
    """Re-draw every weight with a spread that gives well-separated logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "model.encoder.embed_positions.weight":
                continue  # keep Whisper's sinusoids (HF keeps them frozen too)
            if name.endswith("layer_norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.shape[1] * (p.shape[2] if p.ndim == 3 else 1)
                std = 1.0 / np.sqrt(fan_in)
                if name.endswith("embed_tokens.weight") or name.endswith("embed_positions.weight"):
                    std = 0.5
                p.copy_(std * torch.randn(p.shape, generator=gen))


def main() -> None:
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model_dir = OUT / "tiny-whisper"
    dtype_dir = OUT / "tiny-whisper-dtypes"
    model_dir.mkdir(parents=True, exist_ok=True)
    dtype_dir.mkdir(parents=True, exist_ok=True)

    tok = build_tokenizer()
    vocab = tok.get_vocab_size()
    sid = {s: tok.token_to_id(s) for s in SPECIALS}
    tok.save(str(model_dir / "tokenizer.json"))

    config = WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=80,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        d_model=64,
        max_source_positions=1500,
        max_target_positions=64,
        pad_token_id=sid["<|endoftext|>"],
        bos_token_id=sid["<|endoftext|>"],
        eos_token_id=sid["<|endoftext|>"],
        decoder_start_token_id=sid["<|startoftranscript|>"],
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    model = WhisperForConditionalGeneration(config).eval()
    randomise(model, gen)
    model.save_pretrained(str(model_dir), safe_serialization=True)
    # Keep the directory minimal and deterministic (no chat/processor extras).
    fe = WhisperFeatureExtractor(feature_size=80)
    fe.save_pretrained(str(model_dir))
    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "model_max_length": 64,
    }
    (model_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")

    # Same weights in f16 and bf16 (all tensors, including the tied head as HF saves it).
    sd = {k: v.contiguous() for k, v in model.state_dict().items() if k != "proj_out.weight"}
    save_file({k: v.to(torch.float16) for k, v in sd.items()}, str(dtype_dir / "model.f16.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in sd.items()}, str(dtype_dir / "model.bf16.safetensors"))

    fe128 = WhisperFeatureExtractor(feature_size=128)
    prompt_text = " The speaker sounds"
    prompt = [
        sid["<|startoftranscript|>"],
        sid["<|en|>"],
        sid["<|transcribe|>"],
        sid["<|notimestamps|>"],
    ] + tok.encode(prompt_text).ids
    prompt_t = torch.tensor([prompt], dtype=torch.long)

    ref: dict[str, torch.Tensor] = {"prompt": prompt_t[0].clone()}
    meta: dict = {
        "seed": SEED,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "clips": [],
        "prompt": prompt,
        "prompt_text": prompt_text,
        "special_ids": sid,
        "vocab_size": vocab,
        "greedy_steps": N_GREEDY,
    }
    min_margin = float("inf")
    for i, (rel, n) in enumerate(CLIPS):
        audio = load_clip(rel, n)
        ref[f"audio.{i}"] = torch.from_numpy(audio)
        mel = fe(audio, sampling_rate=16000, padding="longest", return_tensors="np").input_features[0]
        ref[f"mel80.{i}"] = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))
        mel128 = fe128(audio, sampling_rate=16000, padding="longest", return_tensors="np").input_features[0]
        ref[f"mel128.{i}"] = torch.from_numpy(np.ascontiguousarray(mel128, dtype=np.float32))
        padded = fe(audio, sampling_rate=16000, return_tensors="pt").input_features  # [1, 80, 3000]
        if i == 0:
            ref["mel80_padded.0"] = padded[0].contiguous()

        with torch.no_grad():
            enc = model.model.encoder(padded).last_hidden_state  # [1, 1500, 64]
            if i == 0:
                ref["encoder.0"] = enc[0].contiguous()
            out = model(encoder_outputs=(enc,), decoder_input_ids=prompt_t, use_cache=False)
            ref[f"prompt_logits.{i}"] = out.logits[0].contiguous()

            # Greedy decoding by full recomputation (no cache): the Rust side uses a
            # KV cache, so agreement also checks the cache.
            tokens = list(prompt)
            step_logits = []
            for _ in range(N_GREEDY):
                ids = torch.tensor([tokens], dtype=torch.long)
                logits = model(encoder_outputs=(enc,), decoder_input_ids=ids, use_cache=False).logits[0, -1]
                top2 = torch.topk(logits, 2).values
                min_margin = min(min_margin, float(top2[0] - top2[1]))
                step_logits.append(logits)
                tokens.append(int(torch.argmax(logits)))
            ref[f"greedy_tokens.{i}"] = torch.tensor(tokens[len(prompt) :], dtype=torch.long)
            ref[f"greedy_logits.{i}"] = torch.stack(step_logits).contiguous()
        meta["clips"].append(
            {
                "file": rel,
                "samples": n,
                "frames_unpadded": int(mel.shape[-1]),
                "greedy_tokens": tokens[len(prompt) :],
                "greedy_text": tok.decode(tokens[len(prompt) :], skip_special_tokens=False),
            }
        )
    first = label_first_tokens(tok)
    meta["scorer"] = {
        "labels": LABELS,
        "forms": FORMS,
        "first_tokens": first,
        "temperatures": TEMPERATURES,
        "position": "last prompt position",
    }
    for i in range(len(CLIPS)):
        answer_logits = ref[f"prompt_logits.{i}"][-1].numpy()
        for k, temp in enumerate(TEMPERATURES):
            z, probs = first_token_scores(answer_logits, first, temp)
            ref[f"label_logits.{i}"] = torch.from_numpy(z.astype(np.float32))
            ref[f"label_probs.{i}.t{k}"] = torch.from_numpy(probs.astype(np.float32))
        z, phi = token_average_scores(ref[f"greedy_logits.{i}"].numpy(), first)
        ref[f"token_avg_logits.{i}"] = torch.from_numpy(z.astype(np.float32))
        ref[f"token_avg_probs.{i}"] = torch.from_numpy(phi.astype(np.float32))
    meta["min_greedy_margin"] = min_margin
    ref = {k: v.detach().contiguous() for k, v in ref.items()}
    save_file(ref, str(OUT / "tiny-whisper-ref.safetensors"))
    (OUT / "tiny-whisper-ref.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))
    if min_margin < 1e-3:
        sys.exit(f"greedy margin {min_margin} too small for a robust token test; change SEED")


def make_qwen2(tok: Tokenizer) -> None:
    """Tiny random `Qwen2ForCausalLM` (the decoder of Qwen2-Audio) and its reference:
    full-sequence logits of a prompt and greedy decoding by full recomputation."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    gen = torch.Generator().manual_seed(SEED + 1)
    config = Qwen2Config(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=False,
        use_sliding_window=False,
        bos_token_id=None,
        eos_token_id=tok.token_to_id("<|endoftext|>"),
    )
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[1]))
    out_dir = OUT / "tiny-qwen2"
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    prompt = tok.encode("Which emotion does the speaker express? Answer with one word.").ids
    ref: dict[str, torch.Tensor] = {"prompt": torch.tensor(prompt, dtype=torch.long)}
    with torch.no_grad():
        ref["prompt_logits"] = model(torch.tensor([prompt])).logits[0].contiguous()
        tokens = list(prompt)
        steps = []
        margin = float("inf")
        for _ in range(N_GREEDY):
            logits = model(torch.tensor([tokens])).logits[0, -1]
            top2 = torch.topk(logits, 2).values
            margin = min(margin, float(top2[0] - top2[1]))
            steps.append(logits)
            tokens.append(int(logits.argmax()))
    ref["greedy_tokens"] = torch.tensor(tokens[len(prompt) :], dtype=torch.long)
    ref["greedy_logits"] = torch.stack(steps).contiguous()
    save_file({k: v.contiguous() for k, v in ref.items()}, str(OUT / "tiny-qwen2-ref.safetensors"))
    print(f"tiny-qwen2: prompt {len(prompt)} tokens, greedy {tokens[len(prompt):]}, min margin {margin:.4f}")
    if margin < 1e-3:
        sys.exit("qwen2 greedy margin too small")


def random_qwen2_audio(tok: Tokenizer, seed: int, audio: dict, text: dict):
    """A `Qwen2AudioForConditionalGeneration` of the given sizes with the fixture
    tokenizer's vocabulary and special tokens, its weights drawn from `seed` with a
    spread that keeps logits away from near-ties (see the module doc)."""
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    gen = torch.Generator().manual_seed(seed)
    config = Qwen2AudioConfig(
        audio_config={"model_type": "qwen2_audio_encoder", "num_mel_bins": 80,
                      "max_source_positions": 1500, **audio},
        text_config={
            "model_type": "qwen2",
            "vocab_size": tok.get_vocab_size(),
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "tie_word_embeddings": False,
            "eos_token_id": tok.token_to_id("<|im_end|>"),
            **text,
        },
        audio_token_index=tok.token_to_id("<|AUDIO|>"),
    )
    model = Qwen2AudioForConditionalGeneration(config).eval()
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
            else:
                fan_in = p.shape[1] * (p.shape[2] if p.ndim == 3 else 1)
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))
    return model


def make_qwen2_audio(tok: Tokenizer) -> None:
    """Tiny random `Qwen2AudioForConditionalGeneration` and its reference on clip 0 and 2.

    The input ids are built as Qwen2-Audio's processor + chat template would, with the
    `<|AUDIO|>` placeholder already expanded to the number of audio tokens:
    <|im_start|>user\n<|audio_bos|><|AUDIO|>×n<|audio_eos|>QUESTION<|im_end|>\n<|im_start|>assistant\n
    """
    audio_id = tok.token_to_id("<|AUDIO|>")
    model = random_qwen2_audio(
        tok,
        SEED + 2,
        audio={"encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 128, "d_model": 64},
        text={"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512},
    )
    out_dir = OUT / "tiny-qwen2-audio"
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)

    fe = WhisperFeatureExtractor(feature_size=80)
    ids = lambda text: tok.encode(text).ids  # noqa: E731
    question = "Which emotion does the speaker express? Answer with one word."
    ref: dict[str, torch.Tensor] = {}
    summary = []
    for i, (rel, n) in [(0, CLIPS[0]), (2, CLIPS[2])]:
        audio = load_clip(rel, n)
        feats = fe(audio, sampling_rate=16000, return_attention_mask=True, return_tensors="pt")
        valid = int(feats.attention_mask.sum())
        conv_len = (valid - 1) // 2 + 1
        n_audio = (conv_len - 2) // 2 + 1
        input_ids = (
            [tok.token_to_id("<|im_start|>")] + ids("user\n") + [tok.token_to_id("<|audio_bos|>")]
            + [audio_id] * n_audio + [tok.token_to_id("<|audio_eos|>")] + ids(question)
            + [tok.token_to_id("<|im_end|>")] + ids("\n") + [tok.token_to_id("<|im_start|>")] + ids("assistant\n")
        )
        with torch.no_grad():
            out = model(
                input_ids=torch.tensor([input_ids]),
                input_features=feats.input_features,
                feature_attention_mask=feats.attention_mask,
            )
        ref[f"input_ids.{i}"] = torch.tensor(input_ids, dtype=torch.long)
        ref[f"logits.{i}"] = out.logits[0].contiguous()
        summary.append((rel, valid, n_audio, len(input_ids)))
    save_file({k: v.contiguous() for k, v in ref.items()}, str(OUT / "tiny-qwen2-audio-ref.safetensors"))
    print(f"tiny-qwen2-audio: (clip, valid frames, audio tokens, sequence) {summary}")


def make_voxtral(tok: Tokenizer) -> None:
    """Tiny random `VoxtralForConditionalGeneration` (Whisper encoder, ×4 frame stacking,
    GELU MLP projector, Llama decoder with explicit head_dim) and its reference on clip 1.

    Voxtral always encodes 30 s chunks: 1500 encoder frames → 375 audio tokens.
    """
    from transformers import VoxtralConfig, VoxtralForConditionalGeneration

    gen = torch.Generator().manual_seed(SEED + 3)
    audio_id = tok.token_to_id("<|AUDIO|>")
    config = VoxtralConfig(
        audio_config={
            "model_type": "voxtral_encoder",
            "vocab_size": tok.get_vocab_size(),
            "hidden_size": 32,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_mel_bins": 80,
            "max_source_positions": 1500,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": tok.get_vocab_size(),
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 512,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 100000000.0},
            "tie_word_embeddings": False,
            "attention_bias": False,
            "mlp_bias": False,
        },
        audio_token_id=audio_id,
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
            else:
                fan_in = p.shape[1] * (p.shape[2] if p.ndim == 3 else 1)
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))
    out_dir = OUT / "tiny-voxtral"
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)

    fe = WhisperFeatureExtractor(feature_size=80)
    rel, n = CLIPS[1]
    audio = load_clip(rel, n)
    feats = fe(audio, sampling_rate=16000, return_tensors="pt").input_features
    n_audio = 1500 // 4
    input_ids = (
        [tok.token_to_id("<|im_start|>")] + [audio_id] * n_audio
        + tok.encode("Which emotion does the speaker express?").ids + [tok.token_to_id("<|im_end|>")]
    )
    with torch.no_grad():
        out = model(input_ids=torch.tensor([input_ids]), input_features=feats)
    ref = {"input_ids.1": torch.tensor(input_ids, dtype=torch.long), "logits_last.1": out.logits[0, -8:].contiguous()}
    save_file(ref, str(OUT / "tiny-voxtral-ref.safetensors"))
    print(f"tiny-voxtral: {len(input_ids)} tokens, {n_audio} audio tokens")


def make_qwen2_audio_vllm(tok: Tokenizer) -> None:
    """Tiny random Qwen2-Audio that vLLM's CPU build can serve (remote-scoring tests).

    vLLM's CPU attention kernels need head_dim in {32, 64, 80, 96, 112, 128, 256}, so
    this variant has hidden 128 with 2 heads (head_dim 64) in the decoder and the audio
    encoder, and max_position_embeddings 2048 (the `serve` script's --max-model-len).
    The tokenizer files (with Qwen2-Audio's real chat template) are copied from
    ``tiny-qwen2-audio/`` (written by scripts/make_chat_fixtures.py) so emomon and vLLM
    render the same prompt; ``preprocessor_config.json`` is the 80-bin Whisper feature
    extractor vLLM's processor needs. About 3 MB.

        /root/.cache/emomon-venv/bin/python scripts/make_fixtures.py qwen2-audio-vllm
    """
    import shutil

    model = random_qwen2_audio(
        tok,
        SEED + 5,
        audio={"encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 128, "d_model": 128},
        text={"hidden_size": 128, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 2048},
    )
    out_dir = OUT / "tiny-qwen2-audio-vllm"
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(OUT / "tiny-qwen2-audio" / name, out_dir / name)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(str(out_dir))
    print(f"tiny-qwen2-audio-vllm: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    if sys.argv[1:] == ["qwen2-audio-vllm"]:
        make_qwen2_audio_vllm(build_tokenizer())
        sys.exit(0)
    main()
    make_qwen2(build_tokenizer())
    make_qwen2_audio(build_tokenizer())
    make_voxtral(build_tokenizer())
