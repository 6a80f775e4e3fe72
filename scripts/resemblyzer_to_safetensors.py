#!/usr/bin/env python3
"""Convert resemblyzer 0.1.4's `pretrained.pt` (GE2E speaker encoder, Apache-2.0) to a
safetensors file, without torch.

`pretrained.pt` is in PyTorch's *legacy* (pre-zip) serialization: five pickles in a row
(magic number, protocol version, sys info, the checkpoint whose tensors are persistent
references to storages, the list of storage keys), then each storage as a little-endian
u64 element count followed by its raw bytes. This reads that layout with the standard
`pickle` module and numpy, keeps `model_state` (the LSTM and linear layer that
`VoiceEncoder` loads; the GE2E loss's `similarity_weight`/`similarity_bias` are dropped as
`VoiceEncoder` drops them) and writes float32 tensors under their PyTorch names.

Usage: python resemblyzer_to_safetensors.py pretrained.pt OUT.safetensors
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

MAGIC = 0x1950A86A20F9469CFC6C
DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
          "LongStorage": np.int64, "IntStorage": np.int32}
KEEP_PREFIXES = ("lstm.", "linear.")


class StorageType:
    def __init__(self, name: str):
        if name not in DTYPES:
            raise SystemExit(f"unsupported storage type {name}")
        self.dtype = DTYPES[name]


class TensorRef:
    """A tensor as the legacy pickle describes it: a view into a storage."""

    def __init__(self, storage, offset, size, stride):
        self.key, self.offset, self.size, self.stride = storage[0], offset, tuple(size), tuple(stride)
        self.dtype = storage[1]


def rebuild_tensor_v2(storage, offset, size, stride, *_rest):
    return TensorRef(storage, offset, size, stride)


class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return rebuild_tensor_v2
        if module == "torch" and name.endswith("Storage"):
            return StorageType(name)
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        raise SystemExit(f"unexpected object in checkpoint: {module}.{name}")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel, *_ = pid
        if kind != "storage":
            raise SystemExit(f"unexpected persistent id {pid!r}")
        return (key, storage_type.dtype)


def read_legacy(path: Path) -> dict[str, np.ndarray]:
    f = io.BytesIO(path.read_bytes())
    if pickle.load(f) != MAGIC:
        raise SystemExit(f"{path}: not a legacy PyTorch checkpoint (bad magic number)")
    pickle.load(f)  # protocol version
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise SystemExit(f"{path}: big-endian checkpoint")
    checkpoint = Unpickler(f).load()
    keys = pickle.load(f)
    state = checkpoint["model_state"]
    dtype_of = {t.key: t.dtype for t in state.values()}
    storages = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        dtype = np.dtype(dtype_of.get(key, np.float32))
        storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    out = {}
    for name, t in state.items():
        if not name.startswith(KEEP_PREFIXES):
            continue
        flat = storages[t.key]
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[t.offset:], shape=t.size, strides=tuple(s * itemsize for s in t.stride))
        out[name] = np.ascontiguousarray(view, dtype=np.float32)
    return out


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    tensors = read_legacy(Path(sys.argv[1]))
    for name, a in sorted(tensors.items()):
        print(f"  {name} {a.shape}")
    save_file(tensors, sys.argv[2], metadata={"source": "resemblyzer==0.1.4 pretrained.pt"})


if __name__ == "__main__":
    main()
