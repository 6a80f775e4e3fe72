#!/usr/bin/env python3
"""Chat-template fixtures: what transformers renders and feeds the model, end to end.

Run after scripts/make_fixtures.py (it reuses its tiny models and tokenizer). Writes,
under models/fixtures/ (committed, small):

* ``tiny-qwen2-audio/{tokenizer.json, tokenizer_config.json}`` — the fixture tokenizer
  and a tokenizer config carrying Qwen2-Audio's real chat template (transformers'
  ``Qwen2AudioProcessor.default_chat_template``, the Qwen2-Audio-7B-Instruct one) and
  its special tokens, so the directory opens like a published checkpoint.
* ``tiny-voxtral/{tokenizer.json, tokenizer_config.json}`` — the tokenizer and a small
  template that lays out the existing Voxtral reference prompt
  (``<|im_start|>`` + audio + question + ``<|im_end|>``).
* ``chat-template-ref.json`` — for several templates and conversations: the text
  ``tokenizer.apply_chat_template(messages, add_generation_prompt=…, tokenize=False)``
  returns and its ids.
* ``tiny-qwen2-audio-chat-ref.safetensors`` / ``.json`` — the full Qwen2-Audio path as
  a user would run it in Python: ``processor.apply_chat_template`` (audio first, then the
  question) → ``processor(text, audio)`` → model; ``input_ids.{i}``, the logits at the
  answer position ``answer_logits.{i}``, and greedy decoding (``generate``,
  ``do_sample=False``): ``greedy_tokens.{i}``, ``greedy_logits.{i}``; the JSON holds the
  rendered prompt, the question and the label set.

    /root/.cache/emomon-venv/bin/python scripts/make_chat_fixtures.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    WhisperFeatureExtractor,
)

import make_fixtures as mf

OUT = mf.OUT
LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust", "calm"]
QUESTION = (
    "Which emotion does the speaker express: neutral, happy, sad, angry, fear, disgust, calm? "
    "Answer with one word."
)
GREEDY_STEPS = 6

VOXTRAL_FIXTURE_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}<|im_start|>"
    "{% for c in message['content'] %}{% if c['type'] == 'audio' %}<|AUDIO|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>"
    "{% endif %}{% endfor %}"
)

# Templates exercising what real chat templates use: whitespace control with
# trim_blocks/lstrip_blocks, namespace(), loop.first/last, tojson, string methods,
# special-token variables, raise_exception in an untaken branch.
EXTRA_TEMPLATE = """{{ bos_token }}
{% set ns = namespace(n=0) %}
{% for message in messages %}
    {% if message['role'] == 'system' %}
<<SYS>>{{ message['content'] | trim }}<</SYS>>
    {% elif message['role'] not in ['user', 'assistant'] %}
{{ raise_exception('unknown role') }}
    {% else %}
        {% set ns.n = ns.n + 1 %}
[{{ ns.n }}:{{ message['role'] }}]{% if message['content'] is string %}{{ message['content'].strip() }}{% else %}{{ message['content'] | tojson }}{% endif %}{% if loop.last %}.{% endif %}

    {% endif %}
{% endfor %}
{% if add_generation_prompt %}[assistant]{% endif %}"""


def qwen2_audio_template() -> str:
    return Qwen2AudioProcessor.default_chat_template.fget(None)  # type: ignore[attr-defined]


def write_tokenizer(dir_: Path, template: str, special: dict) -> PreTrainedTokenizerFast:
    shutil.copy(OUT / "tiny-whisper" / "tokenizer.json", dir_ / "tokenizer.json")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": template,
        "model_max_length": 4096,
        **special,
    }
    (dir_ / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return PreTrainedTokenizerFast.from_pretrained(str(dir_))


def audio_question(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": question}]}]


def main() -> None:
    q_dir = OUT / "tiny-qwen2-audio"
    q_tok = write_tokenizer(
        q_dir,
        qwen2_audio_template(),
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None},
    )
    v_dir = OUT / "tiny-voxtral"
    v_tok = write_tokenizer(v_dir, VOXTRAL_FIXTURE_TEMPLATE, {"eos_token": "<|im_end|>"})

    # Template rendering cases.
    cases = []
    conversations = {
        "audio_question": audio_question(QUESTION),
        "system_and_turns": [
            {"role": "system", "content": "  Be brief.  "},
            {"role": "user", "content": [{"type": "audio", "audio_url": "x.wav"}, {"type": "text", "text": "Mood?"}]},
            {"role": "assistant", "content": "Calm."},
            {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "And now — ümlaut?"}]},
        ],
        "string_content": [{"role": "user", "content": "Just text, no audio."}],
    }
    extra_tok = write_tokenizer_tmp(EXTRA_TEMPLATE)
    for tname, tok in [("qwen2_audio", q_tok), ("voxtral_fixture", v_tok), ("extra", extra_tok)]:
        for cname, messages in conversations.items():
            for gen in (True, False):
                text = tok.apply_chat_template(messages, add_generation_prompt=gen, tokenize=False)
                ids = tok(text, add_special_tokens=False).input_ids
                cases.append(
                    {
                        "template": tname,
                        "conversation": cname,
                        "messages": messages,
                        "add_generation_prompt": gen,
                        "text": text,
                        "ids": ids,
                    }
                )
    (OUT / "chat-template-ref.json").write_text(
        json.dumps(
            {"templates": {"qwen2_audio": qwen2_audio_template(), "voxtral_fixture": VOXTRAL_FIXTURE_TEMPLATE,
                           "extra": EXTRA_TEMPLATE},
             "special_tokens": {"extra": {"bos_token": "<|startoftranscript|>"}},
             "cases": cases},
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )

    # Qwen2-Audio end to end with the real template.
    processor = Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80),
        tokenizer=q_tok,
        chat_template=qwen2_audio_template(),
    )
    model = Qwen2AudioForConditionalGeneration.from_pretrained(str(q_dir)).eval()
    ref: dict[str, torch.Tensor] = {}
    meta = {"labels": LABELS, "question": QUESTION, "clips": [], "greedy_steps": GREEDY_STEPS}
    text = processor.apply_chat_template(audio_question(QUESTION), add_generation_prompt=True, tokenize=False)
    meta["prompt_text"] = text
    for i, (rel, n) in [(0, mf.CLIPS[0]), (2, mf.CLIPS[2])]:
        audio = mf.load_clip(rel, n)
        inputs = processor(text=text, audio=[audio], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs)
            gen = model.generate(
                **inputs,
                max_new_tokens=GREEDY_STEPS,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                eos_token_id=q_tok.convert_tokens_to_ids("<|im_end|>"),
                pad_token_id=q_tok.convert_tokens_to_ids("<|endoftext|>"),
            )
        t = inputs.input_ids.shape[1]
        ref[f"input_ids.{i}"] = inputs.input_ids[0].to(torch.long).contiguous()
        ref[f"answer_logits.{i}"] = out.logits[0, -1].contiguous()
        ref[f"greedy_tokens.{i}"] = gen.sequences[0, t:].to(torch.long).contiguous()
        ref[f"greedy_logits.{i}"] = torch.stack([l[0] for l in gen.logits]).contiguous()
        top2 = torch.stack([l[0] for l in gen.logits]).topk(2, dim=-1).values
        meta["clips"].append(
            {
                "file": rel,
                "samples": n,
                "tokens": t,
                "greedy_tokens": gen.sequences[0, t:].tolist(),
                "min_greedy_margin": float((top2[:, 0] - top2[:, 1]).min()),
            }
        )
    save_file(ref, str(OUT / "tiny-qwen2-audio-chat-ref.safetensors"))
    (OUT / "tiny-qwen2-audio-chat-ref.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(meta["clips"]))


def write_tokenizer_tmp(template: str) -> PreTrainedTokenizerFast:
    import tempfile

    d = Path(tempfile.mkdtemp())
    return write_tokenizer(d, template, {"bos_token": "<|startoftranscript|>"})


if __name__ == "__main__":
    np.random.seed(mf.SEED)
    main()
