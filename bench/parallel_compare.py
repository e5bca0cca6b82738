#!/usr/bin/env python3
"""Joins the `ditserve profile` runs of bench/gpu_parallel.sh (issue 6) into one summary.

Per measured shape: the DiT step at DoP 1 and 2 and ditserve's speed-up, beside the
PyTorch + NCCL figures on 2xH200 quoted in issue 6 (not re-measured here), the VAE decode
per DoP, the encode and the cost of moving the request between two one-device groups;
and whether the issue's target (>= 1.9x at 720p x 51 frames) is met.

Each run is given as `--run LOG JSON`: the profile's stderr and the profile JSON it wrote.
A run cut off by its time budget writes no JSON; its figures are then read from the
progress lines in its log ("profile: 720p step DoP 2: 608.000 ms"), so the shapes it
finished still count, marked `"source": "log"`. Runs of the same model are merged; shapes
are matched by (model, height, width, frames), never by name, since the profile names a
shape after the list it came in ("720p" or "720p-102f").
"""

import argparse
import json
import os
import re
import sys

# Issue 6: PyTorch 2.11 + NCCL, STDiT3-shaped model, frames-sharded spatial blocks and
# positions-sharded temporal blocks with an all-to-all between, 2xH200 over NVLink.
# (height, frames) -> {DoP: ms}. 360p has no figure in the issue.
ISSUE_REFERENCE = {
    (144, 51): {1: 45.5, 2: 62.0},
    (240, 51): {1: 111.7, 2: 86.4},
    (480, 51): {1: 437.6, 2: 257.2},
    (720, 51): {1: 1082.0, 2: 608.0},
    (720, 102): {1: 2075.0, 2: 1118.0},
}
REFERENCE_SOURCE = "issue 6: PyTorch 2.11 + NCCL on 2xH200 (NVLink), quoted, not re-measured"
TARGET = {"height": 720, "frames": 51, "min_speedup": 1.9}
# The issue's table, in its order; shapes beyond it follow in the order they were run.
TABLE_ORDER = [(144, 51), (240, 51), (480, 51), (720, 51), (720, 102)]

NAMED = {"144p": (144, 256), "240p": (240, 426), "360p": (360, 640), "480p": (480, 854),
         "720p": (720, 1280), "1080p": (1080, 1920)}

LOADING = re.compile(r"^profile: loading (\S+) on \d+ device")
RUNS_AT = re.compile(r"^profile: (\S+) runs at (\d+)x(\d+), (\d+) frames -> (\d+) latent frames")
STEP = re.compile(r"^profile: (\S+) (step|decode) DoP (\d+): ([0-9.]+) ms")
ENCODE = re.compile(r"^profile: encode ([0-9.]+) ms")
AGREE = re.compile(r"^profile: (\S+) DoP (\d+) vs DoP 1 after (\d+) steps: rel\. error (\S+)")
MOVE = re.compile(r"^profile: (\S+) move (\S+) -> (\S+): ([0-9.]+) ms")


def shape_of_name(name):
    """(height, width) the profile gives a shape named `name` ("720p", "720p-102f", "832x480")."""
    base = re.sub(r"-\d+f$", "", name)
    if base in NAMED:
        return NAMED[base]
    m = re.fullmatch(r"(\d+)x(\d+)", base)
    if not m:
        raise ValueError(f"shape name '{name}' is neither a named resolution nor WxH")
    return int(m.group(2)), int(m.group(1))


def parse_log(path):
    """The model and the per-shape figures printed by one `ditserve profile` run."""
    model, encode_ms, shapes = None, None, {}
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if m := LOADING.match(line):
                model = m.group(1)
            elif m := RUNS_AT.match(line):
                name, w, h, frames, latent = m.groups()
                shapes.setdefault(name, {"step_ms": {}, "decode_ms": {}})
                shapes[name].update(runs_at=f"{w}x{h}", frames=int(frames),
                                    latent_frames=int(latent))
            elif m := STEP.match(line):
                name, kind, dop, ms = m.groups()
                shapes.setdefault(name, {"step_ms": {}, "decode_ms": {}})
                shapes[name][f"{kind}_ms"][int(dop)] = float(ms)
            elif m := AGREE.match(line):
                name, dop, steps, err = m.groups()
                shapes.setdefault(name, {"step_ms": {}, "decode_ms": {}})
                shapes[name].setdefault("vs_dop1", {})[int(dop)] = {
                    "steps": int(steps), "relative_error": float(err)}
            elif m := ENCODE.match(line):
                encode_ms = float(m.group(1))
            elif m := MOVE.match(line):
                name, src, dst, ms = m.groups()
                shapes.setdefault(name, {"step_ms": {}, "decode_ms": {}})
                shapes[name].update(move_ms=float(ms), move=f"{src} -> {dst}")
    return model, encode_ms, shapes


def load_run(log_path, json_path):
    """Rows of one run: from its JSON when it wrote one, else from its log."""
    model, encode_ms, logged = parse_log(log_path) if os.path.exists(log_path) else (None, None, {})
    rows = []
    if os.path.exists(json_path):
        with open(json_path) as f:
            profile = json.load(f)
        model = profile["model"]
        for s in profile["shapes"]:
            extra = logged.get(s["name"], {})
            rows.append({
                "model": s.get("model", model), "name": s["name"], "height": s["height"],
                "width": s["width"], "frames": s["frames"],
                "runs_at": extra.get("runs_at"), "latent_frames": extra.get("latent_frames"),
                "step_ms": {int(k): v for k, v in s["step_ms"].items()},
                "decode_ms": {int(k): v for k, v in s["decode_ms"].items()},
                "encode_ms": s["encode_ms"], "move_ms": s.get("move_ms"),
                "move": extra.get("move"), "vs_dop1": extra.get("vs_dop1", {}),
                "source": os.path.basename(json_path),
                "hardware": profile.get("hardware")})
        return rows
    if model is None:
        return rows  # the run never got to loading: nothing measured
    for name, s in logged.items():
        if not s["step_ms"]:
            continue  # validated but never stepped
        height, width = shape_of_name(name)
        rows.append({
            "model": model, "name": name, "height": height, "width": width,
            "frames": s.get("frames"), "runs_at": s.get("runs_at"),
            "latent_frames": s.get("latent_frames"), "step_ms": s["step_ms"],
            "decode_ms": s["decode_ms"], "encode_ms": encode_ms, "move_ms": s.get("move_ms"),
            "move": s.get("move"), "vs_dop1": s.get("vs_dop1", {}),
            "source": "log (" + os.path.basename(log_path) + "; the run was cut off before "
                      "writing its profile JSON)"})
    return rows


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def summarise(runs, reference_model):
    merged = {}  # (model, h, w, frames) -> row; a later run fills in what an earlier lacks
    for log_path, json_path in runs:
        for row in load_run(log_path, json_path):
            key = (row["model"], row["height"], row["width"], row["frames"])
            if key in merged and len(merged[key]["step_ms"]) >= len(row["step_ms"]):
                continue
            merged[key] = row

    def order(key):
        model, h, _, frames = key
        first = 0 if model == reference_model else 1
        pos = TABLE_ORDER.index((h, frames)) if (h, frames) in TABLE_ORDER else len(TABLE_ORDER)
        return (first, model, pos)

    out_rows = []
    for key in sorted(merged, key=order):
        r = merged[key]
        t1, t2 = r["step_ms"].get(1), r["step_ms"].get(2)
        named = NAMED.get(f"{r['height']}p") == (r["height"], r["width"])
        size = f"{r['height']}p" if named else f"{r['width']}x{r['height']}"
        row = {
            "model": r["model"], "shape": f"{size} x {r['frames']}f",
            "profile_name": r["name"], "height": r["height"], "width": r["width"],
            "frames": r["frames"], "runs_at": r["runs_at"], "latent_frames": r["latent_frames"],
            "step_ms": {str(k): round(v, 3) for k, v in sorted(r["step_ms"].items())},
            "speedup_dop2": ratio(t1, t2),
            "decode_ms": {str(k): round(v, 3) for k, v in sorted(r["decode_ms"].items())},
            "decode_speedup_dop2": ratio(r["decode_ms"].get(1), r["decode_ms"].get(2)),
            "encode_ms": round(r["encode_ms"], 3) if r["encode_ms"] is not None else None,
            "move_ms": r["move_ms"], "move": r["move"],
            # The latents after the same steps at DoP k against DoP 1's (profile's check).
            "latents_vs_dop1": {str(k): v for k, v in sorted(r["vs_dop1"].items())},
            "source": r["source"],
        }
        ref = ISSUE_REFERENCE.get((r["height"], r["frames"]))
        if r["model"] == reference_model and ref:
            row["reference"] = {
                "source": REFERENCE_SOURCE,
                "step_ms": {str(k): v for k, v in ref.items()},
                "speedup_dop2": ratio(ref[1], ref[2]),
            }
            # How many times faster ditserve's step is than the reference's, per DoP.
            row["vs_reference"] = {str(d): ratio(ref[d], r["step_ms"].get(d)) for d in (1, 2)}
        elif r["model"] == reference_model:
            row["reference"] = None  # the issue has no figure for this shape (360p)
        out_rows.append(row)

    target_row = next((r for r in out_rows if r["model"] == reference_model
                       and r["height"] == TARGET["height"] and r["frames"] == TARGET["frames"]),
                      None)
    target = dict(TARGET, model=reference_model,
                  speedup=target_row["speedup_dop2"] if target_row else None)
    if target["speedup"] is None:
        target["met"] = None
    else:
        target["met"] = target["speedup"] >= TARGET["min_speedup"]
    measured = {(r["height"], r["frames"]) for r in out_rows if r["model"] == reference_model}
    missing = [f"{h}p x {f}f" for (h, f) in TABLE_ORDER if (h, f) not in measured]
    moves = [{"model": r["model"], "shape": r["shape"], "move_ms": r["move_ms"],
              "move": r["move"]} for r in out_rows if r["move_ms"] is not None]
    return out_rows, target, missing, moves


def print_table(rows, target, missing):
    print(f"{'model':<18} {'shape':<18} {'DoP1 ms':>9} {'DoP2 ms':>9} {'x':>6}   "
          f"{'ref DoP1':>8} {'ref DoP2':>8} {'ref x':>6}   {'move ms':>8}")
    for r in rows:
        ref = r.get("reference") or {}
        rs = ref.get("step_ms", {})
        fmt = lambda v, w, p=1: f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"
        print(f"{r['model']:<18} {r['shape']:<18} {fmt(r['step_ms'].get('1'), 9)} "
              f"{fmt(r['step_ms'].get('2'), 9)} {fmt(r['speedup_dop2'], 6, 2)}   "
              f"{fmt(rs.get('1'), 8)} {fmt(rs.get('2'), 8)} {fmt(ref.get('speedup_dop2'), 6, 2)}   "
              f"{fmt(r['move_ms'], 8, 3)}")
    met = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
    print(f"target: {target['model']} {target['height']}p x {target['frames']}f speed-up "
          f">= {target['min_speedup']}: {met}"
          + (f" ({target['speedup']:.2f}x)" if target["speedup"] else ""))
    if missing:
        print("not measured: " + ", ".join(missing))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs=2, action="append", metavar=("LOG", "JSON"), required=True,
                   help="a profile run's stderr log and the profile JSON it wrote (may be absent)")
    p.add_argument("--reference-model", default="opensora-v1.2",
                   help="the model the issue's PyTorch figures are set beside")
    p.add_argument("--commit", default="unknown")
    p.add_argument("--gpu", default="unknown")
    p.add_argument("--command", default="bench/gpu_parallel.sh")
    p.add_argument("--note", default=None)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    rows, target, missing, moves = summarise(a.run, a.reference_model)
    if not rows:
        print("parallel_compare: no run measured anything", file=sys.stderr)
    summary = {
        "benchmark": "elastic sequence parallelism: ditserve profile, DiT step at DoP 1 and 2",
        "command": a.command, "commit": a.commit, "gpu": a.gpu,
        "timing": "ditserve profile: median of --steps-timed steps after --warmup (see each "
                  "row's source); decode per DoP, encode, and move_ms: the whole request "
                  "(latents, captions) from a one-device group to another",
        "target": target, "not_measured": missing, "rows": rows, "moves": moves,
    }
    if a.note:
        summary["note"] = a.note
    with open(a.out, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print_table(rows, target, missing)
    print(f"wrote {a.out}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
