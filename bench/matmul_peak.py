"""Prints this GPU's bf16 matmul rate in TFLOP/s: 8192^3 on random data, median of 20."""
import torch

a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
for _ in range(5):
    a @ b
ts = []
for _ in range(20):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    a @ b
    e.record()
    torch.cuda.synchronize()
    ts.append(s.elapsed_time(e))
print(f"{2 * 8192**3 / (sorted(ts)[10] * 1e-3) / 1e12:.1f}")
