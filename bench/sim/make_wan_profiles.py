#!/usr/bin/env python3
"""Writes the ESTIMATED Wan 2.1 profiles under profiles/ (docs/SCHEDULING.md, "Wan 2.1
profiles: estimates calibrated on one H100"). Every number is a FLOP count divided by a throughput ditserve
measured for Wan 2.1 on one H100 (bench/results/wan-h100.json: the 1.3B step at 480p x 81f,
the VAE decode of 81 frames at 832x480, the UMT5-XXL encode of 512 tokens); what was not
measured (the 14B model, 720p, DoP > 1, H200) is extrapolated from those.

  profiles/wan2.1-h200-x8-estimated.json          Wan 2.1 shapes only
  profiles/opensora-wan2.1-h200-x8-estimated.json the Open-Sora profile's shapes plus the
                                                  Wan shapes, each tagged with its model

DiT step (one denoising step with CFG: batch 2, prompt and negative prompt):
  per block and sample, N latent tokens, C width, F FFN width, L = 512 text tokens,
  FLOP = 2 x multiply-adds:
    G = 8NC^2 (self q,k,v,o) + 4NC^2 + 4LC^2 (cross q,o on N; k,v on L) + 4NCF (FFN)
    A = 4N^2C (self-attention QK^T and PV) + 4NLC (cross-attention)
  step FLOP = 2 x (depth x (G + A) + 2L(4096C + C^2) + 2 x 2N x 64C)  (text embedder,
  patch embedding and head; time embedding and norms neglected).
  t(1) = step FLOP / (e x P), e x P = the TFLOP/s ditserve's Wan 1.3B step reached on H100
  at 480p x 81f (wan-h100.json: 551 TFLOP/s, 71% of the 770 measured beside it), assumed
  for the 14B model and 720p too (larger matrices and longer attention, so no slower);
  H200 has the H100's compute, so the same throughput is assumed there.
  t(k) (Ulysses, k devices) = (2 depth G / k + 2 depth A x ceil(H/k)/H) / (e P)
      + 4 depth x (S (k-1)/k / B + a)                       the 4 all-to-alls per block
      + Lk = 35 ms x (1 + 0.25 log2(k/2))                    as in make_profiles.py
  S = 2 N/k C x 2 bytes (bf16 rows of one member), B = 116 GB/s: the all-to-all
  throughput of bench/results/comm-h200x2.json (62 MB per member in 0.535 ms),
  a = 0.02 ms per collective; ceil(H/k)/H: a member with more heads than another sets
  the pace (1.3B: 12 heads, so DoP 8 gives 2 heads to some members).

VAE decode: conv and attention FLOPs of the Wan VAE decoder counted from its structure
(models/wan_vae.h), divided by the throughput of ditserve's Wan VAE decode of 81 frames at
832x480 on H100 (2136 ms, TF32 convolutions, wan-h100.json) over its FLOPs counted the
same way. Patch parallel on k devices: t(k) = t(1)/k + per-halo-exchange latency
(2 copies x 0.02 ms x convs x latent frames) + the gather of the video to member 0 at B.

Text encode: ditserve's UMT5-XXL encode of 512 tokens on H100 (16.8 ms, bf16,
wan-h100.json), twice (prompt and negative prompt). Move: 1 ms, as the Open-Sora profile (latents 8-20 MB, text 8 MB).
"""
import json
import math
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "profiles")
MEASURED = os.path.join(ROOT, "bench", "results", "wan-h100.json")

TEXT_TOKENS = 512
TEXT_DIM = 4096
A2A_BYTES_PER_S = 62.2e6 / 0.5345e-3  # comm-h200x2.json, 2 members, bf16 [2,15,3600,1152]
COLLECTIVE_S = 0.02e-3
L_MS = 35.0
DOPS = (1, 2, 4, 8)

WAN_DIT = {  # Wan 2.1 configs (models/wan_transformer.h)
    "wan2.1-t2v-1.3b": dict(dim=1536, ffn=8960, heads=12, depth=30),
    "wan2.1-t2v-14b": dict(dim=5120, ffn=13824, heads=40, depth=40),
}


def measured():
    """(DiT FLOP/s, VAE decode s of 81 frames at 832x480, UMT5 encode ms) from wan-h100.json."""
    with open(MEASURED) as f:
        doc = json.load(f)
    rows = {(r["component"], r["name"]): r for r in doc["rows"]}
    dit = rows[("dit", "480p-81f")]
    return (dit["flop"] / (dit["ditserve_ms"] / 1e3), rows[("vae", "vae-decode-480p-81f")]["ditserve_ms"] / 1e3,
            rows[("t5", "t5-encode-512")]["ditserve_ms"])


def latent_grid(width, height, frames):
    return (frames - 1) // 4 + 1, height // 8, width // 8


def dit_flop(model, width, height, frames):
    c, f, depth = model["dim"], model["ffn"], model["depth"]
    t, h, w = latent_grid(width, height, frames)
    n = t * (h // 2) * (w // 2)
    l = TEXT_TOKENS
    g = 8 * n * c * c + 4 * n * c * c + 4 * l * c * c + 4 * n * c * f
    a = 4 * n * n * c + 4 * n * l * c
    extra = 2 * l * (TEXT_DIM * c + c * c) + 2 * 2 * n * 64 * c
    return n, 2 * depth * g + 2 * extra, 2 * depth * a  # batch 2 (CFG)


def dit_step_s(model, width, height, frames, k, flops_per_s):
    n, g, a = dit_flop(model, width, height, frames)
    heads = model["heads"]
    compute = (g / k + a * math.ceil(heads / k) / heads) / flops_per_s
    if k == 1:
        return compute
    shard_bytes = 2 * (n / k) * model["dim"] * 2
    comm = 4 * model["depth"] * (shard_bytes * (k - 1) / k / A2A_BYTES_PER_S + COLLECTIVE_S)
    return compute + comm + L_MS / 1e3 * (1 + 0.25 * math.log2(k / 2))


class Counter:
    """FLOPs of convolutions (2 x kernel x cin x cout per output position) and attention."""

    def __init__(self):
        self.flop = 0.0
        self.convs = 0  # spatial convs with a halo, per chunk

    def conv(self, cin, cout, taps, positions, halo=True):
        self.flop += 2.0 * taps * cin * cout * positions
        self.convs += 1 if halo else 0

    def attention(self, tokens, c, times):
        self.flop += times * (2.0 * tokens * 4 * c * c + 4.0 * tokens * tokens * c)


def wan_vae_flop(width, height, frames):
    """Wan 2.1 VAE decoder (base_dim 96, dim_mult 1,2,4,4, 2 res blocks + 1 per level)."""
    c = Counter()
    t, h, w = latent_grid(width, height, frames)
    dims = [384, 384, 384, 192, 96]
    level_in = [384, 192, 192, 96]
    temporal = [True, True, False]  # reversed temporal_downsample
    pos = t * h * w
    c.conv(16, 384, 27, pos)  # conv_in
    for _ in range(2):
        c.conv(384, 384, 27, pos)
        c.conv(384, 384, 27, pos)
    c.attention(h * w, 384, t)
    tt = t
    for i in range(4):
        cin, cout = level_in[i], dims[i + 1]
        for j in range(3):
            if cin != cout:
                c.conv(cin, cout, 1, tt * h * w, halo=False)
            c.conv(cin, cout, 27, tt * h * w)
            c.conv(cout, cout, 27, tt * h * w)
            cin = cout
        if i < 3:
            if temporal[i]:
                c.conv(cout, 2 * cout, 3, (tt - 1) * h * w, halo=False)  # time_conv
                tt = 1 + 2 * (tt - 1)
            h, w = 2 * h, 2 * w
            c.conv(cout, cout // 2, 9, tt * h * w)  # resample conv to C/2
    c.conv(96, 3, 27, tt * h * w)  # head
    return c.flop, c.convs, t


def wan_vae_decode_s(width, height, frames, k, vae_flops_per_s):
    flop, convs, latent_frames = wan_vae_flop(width, height, frames)
    t1 = flop / vae_flops_per_s
    if k == 1:
        return t1
    halo = 2 * COLLECTIVE_S * convs * latent_frames
    gather = frames * height * width * 3 * 4 * (k - 1) / k / A2A_BYTES_PER_S
    return t1 / k + halo + gather


WAN_SHAPES = [  # name, model, width, height, frames (Wan's 480p is 832x480, 720p 1280x720)
    ("wan1.3b-480p", "wan2.1-t2v-1.3b", 832, 480, 81),
    ("wan14b-480p", "wan2.1-t2v-14b", 832, 480, 81),
    ("wan14b-720p", "wan2.1-t2v-14b", 1280, 720, 81),
]


def wan_shapes():
    dit_fps, wan_vae_s, umt5_ms = measured()
    vae_fps = wan_vae_flop(832, 480, 81)[0] / wan_vae_s
    encode_ms = 2 * umt5_ms
    shapes, notes = [], []
    for name, model, w, h, f in WAN_SHAPES:
        cfg = WAN_DIT[model]
        n, g, a = dit_flop(cfg, w, h, f)
        shapes.append({
            "name": name, "model": model, "height": h, "width": w, "frames": f,
            "step_ms": {str(k): round(1e3 * dit_step_s(cfg, w, h, f, k, dit_fps), 1) for k in DOPS},
            "encode_ms": round(encode_ms, 1),
            "decode_ms": {str(k): round(1e3 * wan_vae_decode_s(w, h, f, k, vae_fps), 1) for k in DOPS},
            "move_ms": 1.0,
        })
        notes.append(f"{name}: {n} tokens, step {(g + a) / 1e12:.1f} TFLOP "
                     f"(attention {100 * a / (g + a):.0f}%), VAE {wan_vae_flop(w, h, f)[0] / 1e12:.1f} TFLOP")
    notes.append(f"throughputs: DiT {dit_fps / 1e12:.0f} TFLOP/s (Wan 1.3B 480p x 81f, H100); "
                 f"VAE {vae_fps / 1e12:.1f} TFLOP/s (Wan VAE 81 frames at 832x480: "
                 f"{wan_vae_flop(832, 480, 81)[0] / 1e12:.1f} TFLOP in {wan_vae_s * 1e3:.0f} ms, H100)")
    return shapes, notes


HARDWARE = ("8x H200, ESTIMATED from FLOP counts at the throughputs ditserve measured for "
            "Wan 2.1 1.3B at 480p x 81f on one H100 (step, VAE decode, UMT5 encode; "
            "bench/results/wan-h100.json); 14B, 720p, DoP > 1 and H200 extrapolated: "
            "bench/sim/make_wan_profiles.py")

if __name__ == "__main__":
    shapes, notes = wan_shapes()
    with open(os.path.join(OUT, "opensora-v1.2-h200-x8.json")) as f:
        opensora = json.load(f)
    mixed = []
    for s in opensora["shapes"]:
        mixed.append({"name": s["name"], "model": opensora["model"], **{k: v for k, v in s.items() if k != "name"}})
    docs = {
        "wan2.1-h200-x8-estimated.json": {"model": "wan2.1-t2v", "hardware": HARDWARE, "shapes": shapes},
        "opensora-wan2.1-h200-x8-estimated.json": {
            "model": "opensora-v1.2+wan2.1-t2v",
            "hardware": "Open-Sora shapes: " + opensora["hardware"] + "; Wan shapes: " + HARDWARE,
            "shapes": mixed + shapes,
        },
    }
    for name, doc in docs.items():
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print("wrote", os.path.join("profiles", name))
    for line in notes:
        print(line)
    for s in shapes:
        print(s["name"], "step", s["step_ms"], "decode", s["decode_ms"], "encode", s["encode_ms"])
