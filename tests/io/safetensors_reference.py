#!/usr/bin/env python3
"""Cross-checks ditserve's safetensors files against the reference implementation.

  safetensors_reference.py write PATH   writes the expected tensors with `safetensors`
  safetensors_reference.py check PATH   verifies a file that ditserve wrote

Exits 77 when numpy or safetensors is not importable (the C++ test then skips).
The tensors must match reference_tensors() in reference_test.cc.
"""
import json
import struct
import sys

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import save_file
except ImportError:
    sys.exit(77)

METADATA = {"source": "reference"}
BF16_BITS = [0x3F80, 0xC000, 0x3F00]  # 1.0, -2.0, 0.5


def expected():
    return {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5,
        "f16": np.arange(4, dtype=np.float16) - 1.5,
        "i32": np.array([-3, 0, 7, 2**31 - 1], dtype=np.int32),
        "i64": np.array([[-(2**40), 1], [2, 3]], dtype=np.int64),
        "u8": np.arange(5, dtype=np.uint8) * 50,
        "scalar": np.array(3.25, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def check(path):
    tensors = expected()
    errors = []
    with safe_open(path, framework="numpy") as f:  # validates the whole header
        if f.metadata() != METADATA:
            errors.append(f"metadata {f.metadata()} != {METADATA}")
        if sorted(f.keys()) != sorted(list(tensors) + ["bf16"]):
            errors.append(f"names {sorted(f.keys())}")
        for name, want in tensors.items():
            got = f.get_tensor(name)
            if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
                errors.append(f"{name}: {got.dtype}{got.shape} {got} != {want.dtype}{want.shape} {want}")
    # numpy has no bfloat16: read its bytes through the header.
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    entry = header.get("bf16", {"dtype": None, "shape": None, "data_offsets": [0, 0]})
    begin, end = entry["data_offsets"]
    bits = list(struct.unpack(f"<{(end - begin) // 2}H", raw[8 + n + begin : 8 + n + end]))
    if entry["dtype"] != "BF16" or entry["shape"] != [3] or bits != BF16_BITS:
        errors.append(f"bf16: {entry} {bits}")
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "write":
        save_file(expected(), path, metadata=METADATA)
        return 0
    return check(path)


if __name__ == "__main__":
    sys.exit(main())
