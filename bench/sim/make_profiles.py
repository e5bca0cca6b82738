#!/usr/bin/env python3
"""Writes the hand-made profiles under profiles/ (docs/SCHEDULING.md, "Profiles").

Video: Open-Sora v1.2 step times measured on 2x H200 (issue 6) for DoP 1 and 2,
extrapolated to DoP 4 and 8 with one overhead model, 360p interpolated. Image: a
FLUX.1-dev-like profile for TetriServe's image mix, hand-made from the same model.

Model, per shape:  t(k) = t(1)/k + L * (1 + 0.25 log2(k/2)) + V * (k-1)/k^2   (k >= 2)
  - t(1)/k: the compute splits evenly (Ulysses sequence parallelism);
  - L: fixed per-step cost of the collectives (launch + sync), growing mildly with the
    number of peers; V: the all-to-all volume, of which each device moves (k-1)/k^2.
  - From the measured o2 = t(2) - t(1)/2: L = min(o2, 35 ms), V = 4 (o2 - L); the model
    then reproduces t(1) and t(2) exactly. 35 ms is the smallest-shape overhead
    (144p: o2 = 39 ms), i.e. what the collectives cost when there is almost no data.
"""
import json
import math
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "profiles")
L_CAP_MS = 35.0


def extrapolate(t1, t2, dops=(1, 2, 4, 8), l_cap=L_CAP_MS):
    o2 = t2 - t1 / 2
    l = min(o2, l_cap)
    v = 4 * (o2 - l)
    out = {}
    for k in dops:
        t = t1 if k == 1 else t1 / k + l * (1 + 0.25 * math.log2(k / 2)) + v * (k - 1) / k**2
        out[str(k)] = round(t, 1)
    return out


def video():
    # name, width, height, frames, t(1) ms, t(2) ms  (issue 6, 2x H200)
    measured = [
        ("144p", 256, 144, 51, 45.5, 62.0),
        ("240p", 426, 240, 51, 111.7, 86.4),
        ("480p", 854, 480, 51, 437.6, 257.2),
        ("720p", 1280, 720, 51, 1082.0, 608.0),
        ("720p-102f", 1280, 720, 102, 2075.0, 1118.0),
    ]
    # 360p (640x360x51) is not measured: t(1) by the power law in pixels through 240p and
    # 480p, o2 linear in pixels between them.
    px = lambda w, h: w * h
    p240, p480, p360 = px(426, 240), px(854, 480), px(640, 360)
    alpha = math.log(437.6 / 111.7) / math.log(p480 / p240)
    t1_360 = 111.7 * (p360 / p240) ** alpha
    o2_240, o2_480 = 86.4 - 111.7 / 2, 257.2 - 437.6 / 2
    o2_360 = o2_240 + (p360 - p240) / (p480 - p240) * (o2_480 - o2_240)
    measured.insert(2, ("360p", 640, 360, 51, round(t1_360, 1), round(t1_360 / 2 + o2_360, 1)))
    shapes = []
    for name, w, h, f, t1, t2 in measured:
        # VAE: DDiT measures ~0.87 s at 360p, flat across DoP 1/4/8; scaled by pixels x frames.
        dec1 = 870.0 * (w * h * f) / (640 * 360 * 51)
        shapes.append({
            "name": name, "height": h, "width": w, "frames": f,
            "step_ms": extrapolate(t1, t2),
            "encode_ms": 30.0,
            "decode_ms": {str(k): round(dec1 * fk, 1) for k, fk in ((1, 1.0), (2, 0.95), (4, 0.92), (8, 0.90))},
            "move_ms": 1.0,
        })
    return {
        "model": "opensora-v1.2",
        "hardware": "8x H200 (DoP 1-2 measured on 2x H200, issue 6; 4-8 extrapolated: bench/sim/make_profiles.py)",
        "shapes": shapes,
    }


def image():
    # FLUX.1-dev-like, hand-made: t(1) grows with tokens (linear + attention), the
    # collectives cost L = 10 ms and V = 0.016 ms per token.
    shapes = []
    for side, t1 in ((256, 30.0), (512, 60.0), (1024, 220.0), (2048, 1300.0)):
        tokens = (side // 16) ** 2
        o2 = 20.0 + 0.004 * tokens
        shapes.append({
            "name": f"{side}x{side}", "height": side, "width": side, "frames": 1,
            "step_ms": extrapolate(t1, t1 / 2 + o2, l_cap=20.0),
            "encode_ms": 25.0,
            "decode_ms": {"1": round(10.0 * (side / 256) ** 2, 1), "2": round(9.0 * (side / 256) ** 2, 1)},
            "move_ms": 0.5,
        })
    return {
        "model": "flux.1-dev-like",
        "hardware": "8 GPUs, hand-made for TetriServe's image mix (bench/sim/make_profiles.py)",
        "shapes": shapes,
    }


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, doc in (("opensora-v1.2-h200-x8.json", video()), ("flux-image-x8.json", image())):
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print("wrote", os.path.join("profiles", name))
