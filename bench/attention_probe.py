"""What head dim 72 costs a flash kernel: PyTorch's SDPA backends (flash, cuDNN, memory-
efficient) timed on STDiT3's 720p x 51f spatial attention (2 x 15 frames, 16 heads, 3 600
tokens) at head dims 64, 72, 80, 96 and 128, bf16, CUDA events, median of 10 calls after
3 warm-up calls (reference/timing.py); --layout packed takes q, k, v as views of one [B, S, 3, H, D] tensor, as ditserve's qkv
GEMM writes them, instead of three contiguous [B, H, S, D] tensors.
TFLOP/s counts 4 * S^2 * d per (frame, head) at the head dim given, so a kernel that pads
72 to 128 shows 72/128 of its d = 128 rate. Writes a JSON (--json) and prints a table."""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from timing import time_calls  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=30, help="samples x frames")
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--tokens", type=int, default=3600)
    p.add_argument("--dims", default="64,72,80,96,128")
    p.add_argument("--layout", choices=["bhsd", "packed"], default="bhsd")
    p.add_argument("--json")
    a = p.parse_args()
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION}
    rows = []
    for d in (int(x) for x in a.dims.split(",")):
        if a.layout == "packed":
            qkv = torch.randn(a.batch, a.tokens, 3, a.heads, d, device="cuda", dtype=torch.bfloat16)
            q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        else:
            shape = (a.batch, a.heads, a.tokens, d)
            q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        flop = 4.0 * a.batch * a.heads * a.tokens * a.tokens * d
        for name, backend in backends.items():
            try:
                with sdpa_kernel(backend):
                    ms = time_calls(lambda: F.scaled_dot_product_attention(q, k, v), 3, 10)["ms"]
            except RuntimeError as e:  # a backend that does not take this head dim
                rows.append({"head_dim": d, "backend": name, "error": str(e).splitlines()[0][:200]})
                continue
            rows.append({"head_dim": d, "backend": name, "ms": ms, "tflops": flop / ms / 1e9})
            print(f"d={d:4d} {name:10s} {ms:8.3f} ms {flop / ms / 1e9:7.1f} TFLOP/s", flush=True)
    out = {"command": "python3 " + " ".join(sys.argv),
           "shape": {"batch": a.batch, "heads": a.heads, "tokens": a.tokens}, "layout": a.layout,
           "torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "rows": rows}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
