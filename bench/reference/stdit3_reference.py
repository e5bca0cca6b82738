#!/usr/bin/env python3
"""Plain-PyTorch STDiT3 (Open-Sora 1.2) forward, without the Open-Sora package.

Reads an Open-Sora STDiT3 state dict (the hub checkpoint, or what `ditserve make-weights`
writes under transformer/) and runs the same math as opensora/models/stdit/stdit3.py at
tag v1.2.0, in the same dtype choices: everything in the model dtype (bf16 on the GPU),
timestep/fps/height/width cast to it first, LayerNorm/RMSNorm/softmax statistics in f32.
It is the reference the C++ STDiT3 is compared with and the eager baseline for timing.

  # random inputs (seeded), written so another program can read the same ones
  stdit3_reference.py --config tiny --write-inputs in.safetensors --shape 2,5,8,8 --seed 7
  # forward on them; optionally compare with another implementation's output
  stdit3_reference.py --config tiny --weights DIR --inputs in.safetensors \
      --output ref.safetensors [--compare ours.safetensors]
  # eager timing of one forward (CUDA events), e.g. 720p x 51 frames, batch 2 (CFG)
  stdit3_reference.py --config xl2 --weights DIR --shape 2,15,90,160 --bench 5

Input tensors: latents f32 [B,4,T,H,W], timesteps f32 [B], captions [B,L,caption_channels],
caption_lengths i32 [B], fps/height/width f32 [1]. --output writes "output" f32
[B,8,T,H,W] together with those inputs, with metadata config/checkpoint/dtype.
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from checkpoints import load_state
from timing import time_calls

CONFIGS = {
    # STDiT3-XL/2 (hpcai-tech/OpenSora-STDiT-v3)
    "xl2": dict(hidden=1152, depth=28, heads=16, patch=(1, 2, 2), in_channels=4, pred_sigma=True,
                mlp_ratio=4.0, caption_channels=4096, max_tokens=300, qk_norm=True, input_sq_size=512),
    # ditserve's tiny config (src/models/stdit3.cc: stdit3_tiny)
    "tiny": dict(hidden=64, depth=2, heads=4, patch=(1, 2, 2), in_channels=4, pred_sigma=True,
                 mlp_ratio=4.0, caption_channels=32, max_tokens=300, qk_norm=True, input_sq_size=512),
}

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def load_state_dict(path):
    """A .safetensors file, a sharded index, or a directory holding either (or transformer/)."""
    if os.path.isdir(path) and os.path.isdir(os.path.join(path, "transformer")):
        path = os.path.join(path, "transformer")
    return load_state(path)


class STDiT3Reference:
    def __init__(self, state_dict, cfg, dtype, device):
        self.cfg = cfg
        self.dtype = dtype
        self.device = device
        self.C = cfg["hidden"]
        self.H = cfg["heads"]
        self.D = self.C // self.H
        self.out_channels = cfg["in_channels"] * (2 if cfg["pred_sigma"] else 1)
        # Every parameter in the model dtype, rope.freqs included (it is an nn.Parameter).
        self.w = {k: v.to(device=device, dtype=dtype) for k, v in state_dict.items()}

    # ---- pieces ------------------------------------------------------------------------
    def linear(self, x, name):
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def scalar_embed(self, prefix, values):
        """TimestepEmbedder / SizeEmbedder: [cos, sin] of f32 args -> Linear -> SiLU -> Linear."""
        half = 128
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=self.device) / half)
        args = values[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(self.dtype)
        return self.linear(F.silu(self.linear(emb, prefix + ".mlp.0")), prefix + ".mlp.2")

    def pos_embed(self, h, w, scale, base_size):
        """PositionEmbedding2D: column features first, each half [sin x C/4, cos x C/4]."""
        half = self.C // 2
        inv_freq = 1.0 / (10000 ** (torch.arange(0, half, 2, device=self.device).float() / half))
        rows = torch.arange(h, device=self.device) / scale * (base_size / h)
        cols = torch.arange(w, device=self.device) / scale * (base_size / w)
        row_pos = rows[:, None].expand(h, w).reshape(-1)
        col_pos = cols[None, :].expand(h, w).reshape(-1)

        def sincos(p):
            a = p[:, None] * inv_freq[None]
            return torch.cat([torch.sin(a), torch.cos(a)], dim=-1)

        return torch.cat([sincos(col_pos), sincos(row_pos)], dim=-1).to(self.dtype)  # [S, C]

    def modulate(self, x, shift, scale):
        return F.layer_norm(x, (self.C,), eps=1e-6) * (1 + scale) + shift

    def rms(self, x, weight):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return weight * (x.float() * torch.rsqrt(var + 1e-6)).to(x.dtype)

    def rope(self, x):
        """rotary-embedding-torch 'lang' rotation along dim -2 (time), interleaved pairs."""
        n = x.shape[-2]
        freqs = self.w["rope.freqs"]
        pos = torch.arange(n, device=self.device, dtype=freqs.dtype)
        angles = (pos[:, None] * freqs[None]).repeat_interleave(2, dim=-1)
        pairs = x.unflatten(-1, (-1, 2))
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * angles.cos() + rotated * angles.sin()

    def self_attention(self, prefix, x, temporal):
        n, length, _ = x.shape
        qkv = self.linear(x, prefix + "attn.qkv").view(n, length, 3, self.H, self.D).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [n, heads, length, D]
        if self.cfg["qk_norm"]:
            q = self.rms(q, self.w[prefix + "attn.q_norm.weight"])
            k = self.rms(k, self.w[prefix + "attn.k_norm.weight"])
        if temporal:
            q, k = self.rope(q), self.rope(k)
            # Open-Sora's non-flash path (taken since N <= B here): f32 softmax.
            attn = ((q * self.D ** -0.5) @ k.transpose(-2, -1)).float().softmax(-1).to(q.dtype)
            o = attn @ v
        else:
            o = F.scaled_dot_product_attention(q, k, v)
        return self.linear(o.transpose(1, 2).reshape(n, length, self.C), prefix + "attn.proj")

    def cross_attention(self, prefix, x, y, key_mask):
        b, n, _ = x.shape
        q = self.linear(x, prefix + "cross_attn.q_linear").view(b, n, self.H, self.D).transpose(1, 2)
        kv = self.linear(y, prefix + "cross_attn.kv_linear").view(b, -1, 2, self.H, self.D)
        k, v = kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return self.linear(o.transpose(1, 2).reshape(b, n, self.C), prefix + "cross_attn.proj")

    def block(self, prefix, x, t_mlp, y, key_mask, T, S, temporal):
        B, N, C = x.shape
        mods = (self.w[prefix + "scale_shift_table"][None] + t_mlp.reshape(B, 6, -1)).chunk(6, dim=1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        h = self.modulate(x, shift_msa, scale_msa)
        if temporal:
            h = h.view(B, T, S, C).transpose(1, 2).reshape(B * S, T, C)
            h = self.self_attention(prefix, h, True).view(B, S, T, C).transpose(1, 2).reshape(B, N, C)
        else:
            h = self.self_attention(prefix, h.reshape(B * T, S, C), False).view(B, N, C)
        x = x + gate_msa * h
        x = x + self.cross_attention(prefix, x, y, key_mask)
        h = self.modulate(x, shift_mlp, scale_mlp)
        h = self.linear(F.gelu(self.linear(h, prefix + "mlp.fc1"), approximate="tanh"), prefix + "mlp.fc2")
        return x + gate_mlp * h

    # ---- forward -----------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, latents, timesteps, captions, caption_lengths, fps, height, width):
        cfg, dt = self.cfg, self.dtype
        pt, ph, pw = cfg["patch"]
        x = latents.to(self.device, dt)
        B, _, Tx, Hx, Wx = x.shape
        T, Hn, Wn = -(-Tx // pt), -(-Hx // ph), -(-Wx // pw)
        S = Hn * Wn
        base_size = round(S ** 0.5)
        h_px = torch.tensor(float(height), dtype=dt).item()
        w_px = torch.tensor(float(width), dtype=dt).item()
        scale = (h_px * w_px) ** 0.5 / cfg["input_sq_size"]

        t = self.scalar_embed("t_embedder", timesteps.to(self.device).to(dt))
        fps_t = torch.full((B,), float(fps), device=self.device, dtype=dt)
        t = t + self.scalar_embed("fps_embedder", fps_t)
        t_mlp = self.linear(F.silu(t), "t_block.1")

        y = captions.to(self.device, dt)
        y = self.linear(F.gelu(self.linear(y, "y_embedder.y_proj.fc1"), approximate="tanh"),
                        "y_embedder.y_proj.fc2")
        lens = caption_lengths.to(self.device).long()
        key_mask = (torch.arange(y.shape[1], device=self.device)[None] < lens[:, None])[:, None, None, :]

        # PatchEmbed3D: zero-pad at the end, Conv3d with kernel = stride = patch.
        x = F.pad(x, (0, Wn * pw - Wx, 0, Hn * ph - Hx, 0, T * pt - Tx))
        x = F.conv3d(x, self.w["x_embedder.proj.weight"], self.w["x_embedder.proj.bias"], stride=(pt, ph, pw))
        x = x.flatten(2).transpose(1, 2)  # [B, T*S, C], tokens (t, h, w) row-major
        x = (x.view(B, T, S, self.C) + self.pos_embed(Hn, Wn, scale, base_size)).view(B, T * S, self.C)

        for i in range(cfg["depth"]):
            x = self.block(f"spatial_blocks.{i}.", x, t_mlp, y, key_mask, T, S, False)
            x = self.block(f"temporal_blocks.{i}.", x, t_mlp, y, key_mask, T, S, True)

        shift, scale_ = (self.w["final_layer.scale_shift_table"][None] + t[:, None]).chunk(2, dim=1)
        x = self.linear(self.modulate(x, shift, scale_), "final_layer.linear")
        # B (Nt Nh Nw) (pt ph pw C) -> B C (Nt pt) (Nh ph) (Nw pw), cropped.
        x = x.view(B, T, Hn, Wn, pt, ph, pw, self.out_channels).permute(0, 7, 1, 4, 2, 5, 3, 6)
        x = x.reshape(B, self.out_channels, T * pt, Hn * ph, Wn * pw)[:, :, :Tx, :Hx, :Wx]
        return x.float()


def random_inputs(cfg, shape, caption_len, seed):
    B, T, H, W = shape
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, caption_len + 1, (B,), generator=g, dtype=torch.int32)
    lengths[0] = caption_len
    return {
        "latents": torch.randn(B, cfg["in_channels"], T, H, W, generator=g),
        "timesteps": torch.rand(B, generator=g) * 1000,
        "captions": torch.randn(B, caption_len, cfg["caption_channels"], generator=g),
        "caption_lengths": lengths,
        "fps": torch.tensor([24.0]),
        "height": torch.tensor([float(H * 8)]),
        "width": torch.tensor([float(W * 8)]),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    p.add_argument("--weights", help="safetensors file, index json, or directory")
    p.add_argument("--inputs", help="safetensors file of inputs (see above)")
    p.add_argument("--write-inputs", help="write seeded random inputs here and exit")
    p.add_argument("--shape", default="2,5,8,8", help="B,T,H,W of the latents for random inputs")
    p.add_argument("--caption-len", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="write the f32 [B,8,T,H,W] prediction here")
    p.add_argument("--compare", help="safetensors with 'output' to compare against (relative L2 error)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: bf16 on cuda, f32 on cpu")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bench", type=int, default=0, help="time this many forwards after one warm-up")
    args = p.parse_args()

    cfg = CONFIGS[args.config]
    shape = [int(v) for v in args.shape.split(",")]
    if args.write_inputs:
        save_file(random_inputs(cfg, shape, args.caption_len, args.seed), args.write_inputs)
        return
    if not args.weights:
        sys.exit("--weights is required")
    dtype = DTYPES[args.dtype or ("bf16" if args.device.startswith("cuda") else "f32")]
    model = STDiT3Reference(load_state_dict(args.weights), cfg, dtype, args.device)
    inputs = load_file(args.inputs) if args.inputs else random_inputs(cfg, shape, args.caption_len, args.seed)
    call = lambda: model.forward(inputs["latents"], inputs["timesteps"], inputs["captions"],
                                 inputs["caption_lengths"], inputs["fps"].item(),
                                 inputs["height"].item(), inputs["width"].item())
    out = call()
    if args.output:
        # The inputs travel with the output, and the metadata says how it was made, so the
        # C++ test (tests/models/stdit3_test.cc, DITSERVE_STDIT3_REFERENCE) can replay it.
        tensors = {k: v.contiguous() for k, v in inputs.items()}
        tensors["output"] = out.cpu().contiguous()
        dtype_name = {v: k for k, v in DTYPES.items()}[dtype]
        meta = {"config": args.config, "checkpoint": os.path.abspath(args.weights), "dtype": dtype_name}
        save_file(tensors, args.output, metadata=meta)
    if args.compare:
        other = load_file(args.compare)["output"].float()
        ref = out.cpu()
        err = ((other - ref).norm() / ref.norm()).item()
        print(json.dumps({"relative_error": err, "shape": list(ref.shape)}))
    if args.bench > 0:
        times = time_calls(call, 0, args.bench, args.device)["ms_all"]
        print(json.dumps({"config": args.config, "latents": list(inputs["latents"].shape), "dtype": str(dtype), "device": args.device,
                          "forward_ms": sorted(times)[len(times) // 2], "all_ms": times}))


if __name__ == "__main__":
    main()
