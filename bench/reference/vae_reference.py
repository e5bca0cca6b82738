"""Plain-PyTorch Open-Sora 1.2 VAE decoder on a ditserve checkpoint, as the reference for
OpenSoraVAE.

Usage: python vae_reference.py CHECKPOINT OUT [--config tiny|v1.2] [--frames 17]
                                [--height 64] [--width 64] [--batch 1] [--seed 0]
                                [--dtype f32|bf16] [--micro-frame-size 17]

CHECKPOINT is what `write_random_checkpoint` (or `ditserve make-weights`) writes for the
VAE: a directory with model.safetensors.index.json and its shards, or a single
.safetensors file. The structure (levels, channels, res blocks per level, which levels
upsample time) is read from the tensor names and shapes; GroupNorm group counts are not
stored, so --config names them (tiny: 8, v1.2: 32). Written from the module code of
Open-Sora v1.2.0 (opensora/models/vae/vae.py, vae_temporal.py) and diffusers v0.27.2
(AutoencoderKL's Decoder), not by importing either. The script draws seeded latents
[batch, 4, T', height/8, width/8], decodes them on cuda if present (TF32 off), and writes
OUT as safetensors with
  latents f32 [batch, 4, T', h, w]
  video   f32 [batch, 3, frames, height, width]   unclamped
and metadata: config, frames, dtype, micro_frame_size, checkpoint (its absolute path).
tests/models/opensora_vae_test.cc (OpenSoraVaeReferenceTest, run with
DITSERVE_VAE_REFERENCE=OUT) compares ditserve's OpenSoraVAE with it.
"""
import argparse
import json
import math
import os
import re

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from checkpoints import load_state

SPATIAL = "spatial_vae.module."
TEMPORAL = "temporal_vae."
GROUPS = {"tiny": 8, "v1.2": 32}
SPATIAL_EPS = 1e-6   # diffusers Decoder: resnet_eps and conv_norm_out
TEMPORAL_EPS = 1e-5  # nn.GroupNorm default in vae_temporal.py
SPATIAL_SCALING = 0.18215


def indices(state, pattern):
    """Sorted distinct integers captured by `pattern` over the state's names."""
    return sorted({int(m.group(1)) for name in state if (m := re.fullmatch(pattern, name))})


# ---- temporal VAE (VAE_Temporal_SD) ---------------------------------------------------------

def causal_conv3d(p, prefix, x):
    """CausalConv3d: zeros, k_t - 1 frames in front, k/2 on each side in space, stride 1."""
    w = p[prefix + "conv.weight"]
    b = p.get(prefix + "conv.bias")
    kt, kh, kw = w.shape[2:]
    x = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2, kt - 1, 0))
    return F.conv3d(x, w, b)


def temporal_res_block(p, prefix, x, groups):
    h = F.silu(F.group_norm(x, groups, p[prefix + "norm1.weight"], p[prefix + "norm1.bias"],
                            TEMPORAL_EPS))
    h = causal_conv3d(p, prefix + "conv1.", h)
    h = F.silu(F.group_norm(h, groups, p[prefix + "norm2.weight"], p[prefix + "norm2.bias"],
                            TEMPORAL_EPS))
    h = causal_conv3d(p, prefix + "conv2.", h)
    if prefix + "conv3.conv.weight" in p:
        x = causal_conv3d(p, prefix + "conv3.", x)
    return x + h


def temporal_decode(p, z, num_frames, groups):
    """VAE_Temporal.decode: post_quant_conv, Decoder, drop the causal front padding."""
    d = TEMPORAL + "decoder."
    levels = indices(p, re.escape(d) + r"block_res_blocks\.(\d+)\.0\.norm1\.weight")
    res = indices(p, re.escape(d) + r"res_blocks\.(\d+)\.norm1\.weight")
    per_level = indices(p, re.escape(d) + r"block_res_blocks\.0\.(\d+)\.norm1\.weight")
    ups = indices(p, re.escape(d) + r"conv_blocks\.(\d+)\.conv\.weight")
    time_factor = 2 ** len(ups)

    x = causal_conv3d(p, TEMPORAL + "post_quant_conv.", z)
    x = causal_conv3d(p, d + "conv1.", x)
    for j in res:
        x = temporal_res_block(p, f"{d}res_blocks.{j}.", x, groups)
    for i in reversed(levels):
        for j in per_level:
            x = temporal_res_block(p, f"{d}block_res_blocks.{i}.{j}.", x, groups)
        if i > 0 and (i - 1) in ups:
            x = causal_conv3d(p, f"{d}conv_blocks.{i - 1}.", x)
            b, c2, t, h, w = x.shape  # "B (C ts) T H W -> B C (T ts) H W", ts = 2
            x = x.reshape(b, c2 // 2, 2, t, h, w).permute(0, 1, 3, 2, 4, 5).reshape(b, c2 // 2, 2 * t, h, w)
    x = F.silu(F.group_norm(x, groups, p[d + "norm1.weight"], p[d + "norm1.bias"], TEMPORAL_EPS))
    x = causal_conv3d(p, d + "conv_out.", x)
    pad = 0 if num_frames % time_factor == 0 else time_factor - num_frames % time_factor
    return x[:, :, pad:], time_factor


# ---- spatial VAE (diffusers AutoencoderKL decoder) ------------------------------------------

def conv2d(p, prefix, x):
    w = p[prefix + "weight"]
    return F.conv2d(x, w, p[prefix + "bias"], padding=w.shape[-1] // 2)


def resnet(p, prefix, x, groups):
    h = F.silu(F.group_norm(x, groups, p[prefix + "norm1.weight"], p[prefix + "norm1.bias"],
                            SPATIAL_EPS))
    h = conv2d(p, prefix + "conv1.", h)
    h = F.silu(F.group_norm(h, groups, p[prefix + "norm2.weight"], p[prefix + "norm2.bias"],
                            SPATIAL_EPS))
    h = conv2d(p, prefix + "conv2.", h)
    if prefix + "conv_shortcut.weight" in p:
        x = conv2d(p, prefix + "conv_shortcut.", x)
    return x + h


def mid_attention(p, prefix, x, groups):
    n, c, h, w = x.shape
    hs = F.group_norm(x, groups, p[prefix + "group_norm.weight"], p[prefix + "group_norm.bias"],
                      SPATIAL_EPS)
    hs = hs.reshape(n, c, h * w).transpose(1, 2)
    q, k, v = (F.linear(hs, p[prefix + f"{name}.weight"], p[prefix + f"{name}.bias"])
               for name in ("to_q", "to_k", "to_v"))
    # One head of dimension C, scale C^-1/2, softmax in f32.
    scores = torch.matmul(q.float(), k.float().transpose(1, 2)) / math.sqrt(c)
    out = torch.matmul(scores.softmax(dim=-1), v.float()).to(x.dtype)
    out = F.linear(out, p[prefix + "to_out.0.weight"], p[prefix + "to_out.0.bias"])
    return x + out.transpose(1, 2).reshape(n, c, h, w)


def spatial_decode(p, z, groups):
    """AutoencoderKL.decode of z [N, 4, h, w] already divided by the scaling factor."""
    d = SPATIAL + "decoder."
    x = conv2d(p, SPATIAL + "post_quant_conv.", z)
    x = conv2d(p, d + "conv_in.", x)
    x = resnet(p, d + "mid_block.resnets.0.", x, groups)
    x = mid_attention(p, d + "mid_block.attentions.0.", x, groups)
    x = resnet(p, d + "mid_block.resnets.1.", x, groups)
    for i in indices(p, re.escape(d) + r"up_blocks\.(\d+)\.resnets\.0\.norm1\.weight"):
        for j in indices(p, re.escape(d) + rf"up_blocks\.{i}\.resnets\.(\d+)\.norm1\.weight"):
            x = resnet(p, f"{d}up_blocks.{i}.resnets.{j}.", x, groups)
        if f"{d}up_blocks.{i}.upsamplers.0.conv.weight" in p:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = conv2d(p, f"{d}up_blocks.{i}.upsamplers.0.conv.", x)
    x = F.silu(F.group_norm(x, groups, p[d + "conv_norm_out.weight"], p[d + "conv_norm_out.bias"],
                            SPATIAL_EPS))
    return conv2d(p, d + "conv_out.", x)


# ---- the pipeline (VideoAutoencoderPipeline.decode) -----------------------------------------

def latent_frames(frames, micro_frame_size, time_factor):
    chunk = lambda n: -(-n // time_factor)  # VAE_Temporal.get_latent_size
    full, tail = divmod(frames, micro_frame_size)
    return full * chunk(micro_frame_size) + (chunk(tail) if tail else 0)


def decode(p, z, num_frames, groups, micro_frame_size, micro_batch=4):
    z = z * p["scale"] + p["shift"]
    time_factor = 2 ** len(indices(p, re.escape(TEMPORAL) + r"decoder\.conv_blocks\.(\d+)\.conv\.weight"))
    micro_z = -(-micro_frame_size // time_factor)
    parts = []
    for i in range(0, z.shape[2], micro_z):
        x, _ = temporal_decode(p, z[:, :, i:i + micro_z], min(micro_frame_size, num_frames), groups)
        parts.append(x)
        num_frames -= micro_frame_size
    x = torch.cat(parts, dim=2)
    b, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    images = torch.cat([spatial_decode(p, frames[i:i + micro_batch] / SPATIAL_SCALING, groups)
                        for i in range(0, b * t, micro_batch)])
    return images.reshape(b, t, *images.shape[1:]).permute(0, 2, 1, 3, 4)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--config", choices=sorted(GROUPS), default="tiny")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("f32", "bf16"), default="f32")
    parser.add_argument("--micro-frame-size", type=int, default=17)
    args = parser.parse_args()
    if args.frames < 1:
        raise SystemExit("--frames must be >= 1")

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32 if args.dtype == "f32" else torch.bfloat16

    p = load_state(args.checkpoint, lambda t: t.to(device=device, dtype=dtype))
    groups = GROUPS[args.config]
    latent_channels = p["scale"].shape[1]
    factor = 2 ** (len(indices(p, re.escape(SPATIAL) + r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.weight")))
    time_factor = 2 ** len(indices(p, re.escape(TEMPORAL) + r"decoder\.conv_blocks\.(\d+)\.conv\.weight"))
    if args.height % factor or args.width % factor:
        raise SystemExit(f"--height and --width must be multiples of {factor}")
    t_latent = latent_frames(args.frames, args.micro_frame_size, time_factor)

    gen = torch.Generator().manual_seed(args.seed)
    latents = torch.randn(args.batch, latent_channels, t_latent, args.height // factor,
                          args.width // factor, generator=gen, dtype=torch.float32)
    with torch.no_grad():
        video = decode(p, latents.to(device=device, dtype=dtype), args.frames, groups,
                       args.micro_frame_size)
    video = video.float().cpu().contiguous()
    assert video.shape == (args.batch, 3, args.frames, args.height, args.width), video.shape

    metadata = {"config": args.config, "frames": args.frames, "dtype": args.dtype,
                "micro_frame_size": args.micro_frame_size,
                "checkpoint": os.path.abspath(args.checkpoint),
                "device": str(device), "torch": torch.__version__}
    save_file({"latents": latents.contiguous(), "video": video}, args.out,
              metadata={k: str(v) for k, v in metadata.items()})
    print(f"wrote {args.out}: video {tuple(video.shape)} from latents {tuple(latents.shape)} "
          f"on {device} in {args.dtype}, |video| max {video.abs().max().item():.4g}")


if __name__ == "__main__":
    main()
