"""Timing of one callable for the PyTorch references: CUDA events around each call on a
GPU (wall-clock time elsewhere), the median and every call's time in milliseconds, and the
peak memory PyTorch allocated on the GPU."""
import time

import torch


def time_calls(call, warmup, steps, device="cuda"):
    on_gpu = str(device).startswith("cuda")
    for _ in range(warmup):
        call()
    if on_gpu:
        torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        if on_gpu:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1e3)
    ordered = sorted(times)
    mid = len(ordered) // 2
    ms = ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
    peak = torch.cuda.max_memory_allocated() / 2**20 if on_gpu else 0.0
    return {"ms": ms, "ms_all": times, "peak_allocated_mib": peak}
