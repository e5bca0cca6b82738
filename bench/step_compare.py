#!/usr/bin/env python3
"""Joins `ditserve bench step` JSONs with step_reference.py's eager-PyTorch JSONs (same
component, rows matched by name) into one result with the speed-up (eager ms / ditserve
ms), and prints a table.

  step_compare.py --ours dit.json dit_new.json=short_kernels vae.json t5.json --eager dit_eager.json ... \
      --gpu "NVIDIA H100 80GB HBM3" --commit SHA --command "bench/gpu_step.sh" --out step.json
"""
import argparse
import json


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ours", nargs="*", default=[])
    p.add_argument("--eager", nargs="*", default=[])
    p.add_argument("--gpu", default="")
    p.add_argument("--commit", default="")
    p.add_argument("--command", default="")
    p.add_argument("--extra", nargs="*", default=[], help="KEY=JSONFILE to include as is")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    eager = {}
    torch_version = None
    for path in args.eager:
        with open(path) as f:
            e = json.load(f)
        torch_version = e.get("torch", torch_version)
        for row in e["rows"]:
            eager[(e["component"], row["name"])] = row
    result = {"commit": args.commit, "command": args.command, "gpu": args.gpu,
              "torch": torch_version, "components": {}}
    lines = [f"{'row':<34}{'ditserve ms':>12}{'eager ms':>11}{'speed-up':>9}{'TFLOP/s':>9}"
             f"{'of peak':>8}{'floor ms':>9}{'rel.err':>10}"]
    for item in args.ours:
        path, _, label = item.partition("=")  # PATH[=LABEL]: the label names a variant
        with open(path) as f:
            ours = json.load(f)
        comp = ours["component"]
        key = f"{comp} {label}" if label else comp
        rows = []
        for row in ours["rows"]:
            r = dict(row)
            e = eager.get((comp, row["name"]))
            if e is not None:
                r["eager_ms"] = e["ms"]
                r["eager_ms_all"] = e["ms_all"]
                r["eager_peak_allocated_mib"] = e.get("peak_allocated_mib")
                r["speedup_vs_eager"] = e["ms"] / row["ms"]
                err_key = f"rel_error_vs_ditserve_{label}" if label else "rel_error_vs_ditserve"
                if err_key in e:
                    r["rel_error_vs_eager"] = e[err_key]
            rows.append(r)
            fmt = lambda k, spec: format(r[k], spec) if k in r else "-".rjust(int(spec.split(".")[0]))
            lines.append(f"{key + ' ' + row['name']:<34}{fmt('ms', '12.2f')}{fmt('eager_ms', '11.2f')}"
                         f"{fmt('speedup_vs_eager', '9.2f')}{fmt('tflops', '9.1f')}"
                         f"{fmt('peak_fraction', '8.3f')}{fmt('floor_ms', '9.2f')}"
                         f"{fmt('rel_error_vs_eager', '10.2e')}")
        meta = {k: v for k, v in ours.items() if k != "rows"}
        result["components"][key] = {**meta, "variant": label or "default", "rows": rows}
    for item in args.extra:
        key, path = item.split("=", 1)
        try:
            with open(path) as f:
                result[key] = json.load(f)
        except (OSError, ValueError) as err:
            result[key] = f"unreadable: {err}"
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
