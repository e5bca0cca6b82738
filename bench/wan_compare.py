"""Joins `ditserve bench step` JSONs with wan_step_reference.py's, pair by pair (the i-th
--ours with the i-th --theirs), and the phase timings of `ditserve generate` (--e2e, its
output), into one results JSON; prints a table. Used by gpu_wan.sh."""
import argparse
import json
import re


def compare(ours, theirs):
    rows = []
    by_name = {r["name"]: r for r in theirs["rows"]}
    for r in ours["rows"]:
        t = by_name.get(r["name"])
        if t is None:
            continue
        row = {"model": ours["model"], "component": ours["component"], "name": r["name"],
               "ditserve_ms": r["ms"], "ditserve_ms_all": r["ms_all"],
               "ditserve_pool_high_water_mib": r.get("pool_high_water_mib")}
        for key in ("tflops", "peak_fraction", "floor_ms", "flop", "tokens", "latent", "breakdown_ms"):
            if key in r:
                row[key] = r[key]
        eager = t.get("eager_ms", t.get("ms"))
        row["reference"] = theirs.get("reference")
        row["reference_eager_ms"] = eager
        row["speedup_vs_eager"] = eager / r["ms"]
        if "compiled_ms" in t:
            row["reference_compiled_ms"] = t["compiled_ms"]
            row["reference_compile_first_call_s"] = t.get("compile_first_call_s")
            row["speedup_vs_compiled"] = t["compiled_ms"] / r["ms"]
        if "rel_error" in t:
            row["rel_error_vs_reference"] = t["rel_error"]
        rows.append(row)
    return rows


def parse_e2e(path):
    try:
        text = open(path).read()
    except OSError:
        return None
    out = {"log": text[-2000:]}
    m = re.search(r"timings: load ([\d.]+) s, encode ([\d.]+) s, denoise ([\d.]+) s \(([\d.]+) s/step\), "
                  r"decode ([\d.]+) s, write ([\d.]+) s", text)
    if m:
        load, encode, denoise, per_step, decode, write = (float(v) for v in m.groups())
        out.update({"load_s": load, "encode_s": encode, "denoise_s": denoise,
                    "denoise_s_per_step": per_step, "decode_s": decode, "write_s": write,
                    "generation_s": encode + denoise + decode})
    m = re.search(r"peak GPU memory used: (\d+) MiB", text)
    if m:
        out["peak_gpu_memory_mib"] = int(m.group(1))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ours", nargs="*", default=[])
    p.add_argument("--theirs", nargs="*", default=[])
    p.add_argument("--e2e")
    p.add_argument("--commit", required=True)
    p.add_argument("--gpu", required=True)
    p.add_argument("--peak", type=float)
    p.add_argument("--command", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if len(a.ours) != len(a.theirs):
        p.error("--ours and --theirs pair up: give as many of each")
    result = {"command": a.command, "commit": a.commit, "gpu": a.gpu,
              "matmul_peak_tflops": a.peak, "rows": []}
    for o, t in zip(a.ours, a.theirs):
        try:
            result["rows"] += compare(json.load(open(o)), json.load(open(t)))
        except (OSError, ValueError, KeyError) as e:
            result.setdefault("missing", []).append(f"{o} / {t}: {e}")
    if a.e2e:
        result["e2e_480p_81f_50_steps"] = parse_e2e(a.e2e)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{'model':16} {'part':4} {'row':14} {'ditserve ms':>11} {'eager ms':>10} {'compiled':>10} "
          f"{'vs eager':>8} {'vs comp.':>8} {'of peak':>7} {'rel.err':>9}")
    for r in result["rows"]:
        def f(key, fmt):
            return format(r[key], fmt) if r.get(key) is not None else "-"
        print(f"{r['model']:16} {r['component']:4} {r['name']:14} {r['ditserve_ms']:11.1f} "
              f"{r['reference_eager_ms']:10.1f} {f('reference_compiled_ms', '10.1f'):>10} "
              f"{r['speedup_vs_eager']:8.2f} {f('speedup_vs_compiled', '8.2f'):>8} "
              f"{f('peak_fraction', '7.3f'):>7} {f('rel_error_vs_reference', '9.2e'):>9}")
    if result.get("e2e_480p_81f_50_steps"):
        e = result["e2e_480p_81f_50_steps"]
        print("e2e:", {k: v for k, v in e.items() if k != "log"})
    for m in result.get("missing", []):
        print("missing:", m)


if __name__ == "__main__":
    main()
