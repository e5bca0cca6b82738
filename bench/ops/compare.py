"""Merges op_bench.json (ditserve), torch_ops.json (PyTorch, same run) and gpu_check.json
into one result file with ratios against the measured bf16 matmul peak and PyTorch."""
import argparse
import json


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ours")
    p.add_argument("torch")
    p.add_argument("check")
    p.add_argument("--commit", required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    ours, ref = json.load(open(a.ours)), json.load(open(a.torch))
    check = json.load(open(a.check))
    peak = max(r["tflops"] for r in ours["gemm"] + ref["gemm"] if r["name"].startswith("peak"))
    torch_by_name = {r["name"]: r for r in ref["gemm"] + ref["attention"]}
    rows = []
    for kind in ("gemm", "attention"):
        for r in ours[kind]:
            t = torch_by_name[r["name"]]
            rows.append({"kind": kind, "name": r["name"], "ditserve_ms": r["ms"], "torch_ms": t["ms"],
                         "ditserve_tflops": r["tflops"], "torch_tflops": t["tflops"],
                         "fraction_of_peak": r["tflops"] / peak,
                         "ditserve_time_over_torch": r["ms"] / t["ms"]})
    checks = check.get("checks", check) if isinstance(check, dict) else check
    failed = [c for c in checks if not c.get("pass", False)]
    result = {"gpu": ours["gpu"], "torch": ref["torch"], "commit": a.commit, "command": a.command,
              "matmul_peak_tflops": peak, "ops": rows,
              "gpu_check": {"total": len(checks), "failed": len(failed), "failures": failed}}
    json.dump(result, open(a.out, "w"), indent=2)
    print(f"bf16 matmul peak measured: {peak:.1f} TFLOP/s; gpu_check: {len(checks) - len(failed)}/{len(checks)} passed")
    for r in rows:
        print(f"{r['kind']:9s} {r['name']:44s} ours {r['ditserve_ms']:8.3f} ms  torch {r['torch_ms']:8.3f} ms"
              f"  ours/torch {r['ditserve_time_over_torch']:5.2f}  {100 * r['fraction_of_peak']:5.1f}% of peak")


if __name__ == "__main__":
    main()
