"""PyTorch reference for bench/ops/op_bench.cc: the same GEMM and attention shapes in
bf16, timed with CUDA events (median), in the same run on the same GPU. Writes JSON."""
import json
import sys

import torch
import torch.nn.functional as F


def time_ms(fn, warmup=5, reps=30):
    for _ in range(warmup):
        fn(0)
    torch.cuda.synchronize()
    times = []
    for i in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(i)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def main(path):
    dev = torch.device("cuda")
    bf = torch.bfloat16
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "gemm": [], "attention": []}
    sets = 3
    gemms = [("peak 8192x8192x8192", 8192, 8192, 8192, False),
             ("mlp.fc1 16384x4608x1152", 16384, 4608, 1152, False),
             ("mlp.fc1 +bias+gelu 16384x4608x1152", 16384, 4608, 1152, True),
             ("mlp.fc2 16384x1152x4608", 16384, 1152, 4608, False),
             ("attn.qkv 16384x3456x1152", 16384, 3456, 1152, True)]
    for name, m, n, k, bias in gemms:
        xs = [torch.rand(m, k, device=dev, dtype=bf) * 2 - 1 for _ in range(sets)]
        ws = [torch.rand(n, k, device=dev, dtype=bf) * 2 - 1 for _ in range(sets)]
        b = torch.rand(n, device=dev, dtype=bf) if bias else None
        if "gelu" in name:
            fn = lambda i: F.gelu(F.linear(xs[i % sets], ws[i % sets], b), approximate="tanh")
        else:
            fn = lambda i: F.linear(xs[i % sets], ws[i % sets], b)
        ms = time_ms(fn)
        report["gemm"].append({"name": name, "m": m, "n": n, "k": k, "ms": ms,
                               "tflops": 2 * m * n * k / (ms * 1e-3) / 1e12})
    attns = [("spatial 720p block (30x16x3600x3600, d72)", 30, 16, 3600, 3600, 72),
             ("spatial 144p block (30x16x144x144, d72)", 30, 16, 144, 144, 72),
             ("cross 720p (2x16x54000x300, d72)", 2, 16, 54000, 300, 72),
             ("temporal 720p (7200x16x15x15, d72)", 7200, 16, 15, 15, 72)]
    for name, b, h, sq, sk, d in attns:
        # Same memory layout as ditserve: [B, S, H, D], viewed as [B, H, S, D].
        qs = [(torch.rand(b, sq, h, d, device=dev, dtype=bf) * 2 - 1).transpose(1, 2) for _ in range(sets)]
        ks = [(torch.rand(b, sk, h, d, device=dev, dtype=bf) * 2 - 1).transpose(1, 2) for _ in range(sets)]
        vs = [(torch.rand(b, sk, h, d, device=dev, dtype=bf) * 2 - 1).transpose(1, 2) for _ in range(sets)]
        ms = time_ms(lambda i: F.scaled_dot_product_attention(qs[i % sets], ks[i % sets], vs[i % sets]),
                     warmup=3, reps=20)
        report["attention"].append({"name": name, "b": b, "h": h, "sq": sq, "sk": sk, "d": d, "ms": ms,
                                    "tflops": 4 * b * h * sq * sk * d / (ms * 1e-3) / 1e12})
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    for kind in ("gemm", "attention"):
        for r in report[kind]:
            print(f"torch {kind:9s} {r['name']:44s} {r['ms']:9.4f} ms {r['tflops']:7.1f} TFLOP/s")


if __name__ == "__main__":
    main(sys.argv[1])
