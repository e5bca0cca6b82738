"""diffusers' AutoencoderKLWan decoder on seeded random weights, as the reference for
ditserve's WanVAE (src/models/wan_vae.h), plus its decode time at a real size.

Usage: python wan_vae_reference.py OUT_DIR [--seed 0]

For each comparison case NAME writes NAME.safetensors (post_quant_conv.* and decoder.*
of the module's state dict: diffusers' names, weights rounded to bf16 to keep the file
small) and NAME_ref.safetensors holding the normalised latents `z` and the decoder's f32
output before diffusers' final clamp, with the configuration in its metadata. The latents
are de-normalised as WanPipeline does (z * latents_std + latents_mean) before decoding,
which is what WanVAE::decode does itself. Cases:
  vae_tiny   base_dim 8, num_res_blocks 1 (ditserve's wan_vae_tiny), z [1, 16, 3, 4, 6]
  vae_wide   base_dim 24, num_res_blocks 2 (Wan 2.1's block count), z [1, 16, 3, 8, 8]
Then times the decode of Wan 2.1's own configuration (base_dim 96) at 480x832 with 6
latent frames (21 video frames) in f32 and in bf16 (one warm-up, then the mean of 2),
on random weights. Runs in f32 with TF32 off for the comparisons.
tests/models/wan_vae_reference_test.cc (DITSERVE_WAN_VAE_REFERENCE=OUT_DIR) compares.
"""
import argparse
import json
import os
import time
import traceback

import torch
from safetensors.torch import save_file


def randomise(vae, gen):
    """Every tensor matters: var-preserving convs, non-trivial gammas and biases."""
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                v = 1 + 0.2 * torch.randn(p.shape, generator=gen)
            elif p.dim() == 1:
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5
            p.copy_(v.to(torch.bfloat16).float())  # exactly what the bf16 file holds


def decode_unclamped(vae, x):
    """AutoencoderKLWan._decode without its final clamp (one latent frame at a time)."""
    vae.clear_cache()
    x = vae.post_quant_conv(x)
    outs = []
    for i in range(x.shape[2]):
        vae._conv_idx = [0]
        outs.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map,
                                feat_idx=vae._conv_idx, first_chunk=(i == 0)))
    vae.clear_cache()
    return torch.cat(outs, 2)


def denormalise(vae, z):
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(z)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(z)
    return z * std + mean


def compare_case(out_dir, name, base_dim, num_res_blocks, z_shape, seed, device):
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan(base_dim=base_dim, z_dim=16, dim_mult=[1, 2, 4, 4],
                           num_res_blocks=num_res_blocks, temperal_downsample=[False, True, True])
    gen = torch.Generator().manual_seed(seed)
    randomise(vae, gen)
    vae = vae.to(device=device, dtype=torch.float32).eval()
    state = {k: v.detach().to(torch.bfloat16).cpu().contiguous()
             for k, v in vae.state_dict().items()
             if k.startswith("decoder.") or k.startswith("post_quant_conv.")}
    save_file(state, os.path.join(out_dir, name + ".safetensors"))

    z = torch.randn(*z_shape, generator=gen)
    with torch.no_grad():
        x = denormalise(vae, z.to(device))
        out = decode_unclamped(vae, x)
        clamped = vae.decode(x).sample
    # Our unclamped loop is diffusers' decode up to the clamp.
    assert torch.equal(out.clamp(-1, 1), clamped), "decode_unclamped differs from decode"
    out = out.float().cpu().contiguous()
    meta = {"base_dim": base_dim, "num_res_blocks": num_res_blocks,
            "checkpoint": name + ".safetensors", "device": str(device),
            "torch": torch.__version__, "module": "diffusers.AutoencoderKLWan"}
    save_file({"z": z.contiguous(), "output": out}, os.path.join(out_dir, name + "_ref.safetensors"),
              metadata={k: str(v) for k, v in meta.items()})
    print(f"{name}: z {tuple(z.shape)} -> {tuple(out.shape)}, |out| max "
          f"{out.abs().max().item():.4g}, {sum(v.numel() for v in state.values())} decoder parameters",
          flush=True)


def time_case(device, results, latent_frames=6, h=60, w=104):
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan()  # Wan 2.1's configuration: base_dim 96
    gen = torch.Generator().manual_seed(1)
    randomise(vae, gen)
    z = torch.randn(1, 16, latent_frames, h, w, generator=gen)
    for dtype in (torch.float32, torch.bfloat16):
        vae = vae.to(device=device, dtype=dtype).eval()
        x = denormalise(vae, z.to(device=device, dtype=dtype))
        with torch.no_grad():
            vae.decode(x[:, :, :2, :16, :16])  # warm-up (cuDNN plans)
            torch.cuda.synchronize()
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                frames = vae.decode(x).sample
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        key = f"diffusers_decode_480x832x{frames.shape[2]}_{str(dtype).split('.')[-1]}_s"
        results[key] = sum(times) / len(times)
        results["peak_memory_gib_" + str(dtype).split('.')[-1]] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
        print(json.dumps({key: results[key]}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.makedirs(args.out_dir, exist_ok=True)
    import diffusers
    print(json.dumps({"torch": torch.__version__, "diffusers": diffusers.__version__,
                      "device": str(device)}), flush=True)
    failed = 0
    for case in (lambda: compare_case(args.out_dir, "vae_tiny", 8, 1, (1, 16, 3, 4, 6), args.seed, device),
                 lambda: compare_case(args.out_dir, "vae_wide", 24, 2, (1, 16, 3, 8, 8), args.seed + 1,
                                      device)):
        try:
            case()
        except Exception:  # noqa: BLE001 - report and go on
            traceback.print_exc()
            failed += 1
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = True  # timings as diffusers runs by default
        results = {"gpu": torch.cuda.get_device_name(0)}
        try:
            time_case(device, results)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            failed += 1
        with open(os.path.join(args.out_dir, "vae_timing.json"), "w") as f:
            json.dump(results, f, indent=1)
    raise SystemExit(failed)


if __name__ == "__main__":
    main()
