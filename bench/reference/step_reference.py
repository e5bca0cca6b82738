#!/usr/bin/env python3
"""Eager-PyTorch timings for `ditserve bench step`, on the same work.

  dit: STDiT3-XL/2 (stdit3_reference.py's model, every attention through
       F.scaled_dot_product_attention, bf16) on the weights `ditserve bench step
       --export-weights` wrote, for each row file `--dump-dir` wrote: runs the row's
       inputs, reports the relative L2 error against ditserve's output in that file, then
       times --steps forwards after --warmup ones with CUDA events (median).
  vae: the Open-Sora 1.2 VAE decoder of vae_reference.py (bf16) on random weights drawn
       per the specs `ditserve bench step --component vae --param-specs` wrote (same
       shapes and init kinds, other values), decoding 51 frames of 1280x720.
  t5:  transformers' T5EncoderModel of T5 v1.1 XXL's shape (f32, as ditserve runs it,
       TF32 off) with its own random init, encoding one 300-token prompt.
Timings do not depend on the weights' values (none are zero), so vae and t5 need not
share them; the DiT does, so that its outputs can be compared.

  step_reference.py dit --weights W --dump-dir D [--rows 144p-51f,...] --json out.json
  step_reference.py vae --param-specs specs.json --json out.json
  step_reference.py t5 --json out.json
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stdit3_reference import CONFIGS, STDiT3Reference, load_state_dict  # noqa: E402
from timing import time_calls  # noqa: E402

ROWS = ["144p-51f", "240p-51f", "360p-51f", "480p-51f", "720p-51f", "720p-102f"]


class SdpaSTDiT3(STDiT3Reference):
    """stdit3_reference's model with SDPA for the temporal attention too (the issue's
    eager baseline: bf16, SDPA everywhere)."""

    def self_attention(self, prefix, x, temporal):
        n, length, _ = x.shape
        qkv = self.linear(x, prefix + "attn.qkv").view(n, length, 3, self.H, self.D).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.cfg["qk_norm"]:
            q = self.rms(q, self.w[prefix + "attn.q_norm.weight"])
            k = self.rms(k, self.w[prefix + "attn.k_norm.weight"])
        if temporal:
            q, k = self.rope(q), self.rope(k)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.linear(o.transpose(1, 2).reshape(n, length, self.C), prefix + "attn.proj")


def bench_dit(args):
    model = SdpaSTDiT3(load_state_dict(args.weights), CONFIGS["xl2"], torch.bfloat16, "cuda")
    rows = []
    for name in args.rows.split(","):
        path = os.path.join(args.dump_dir, name + ".safetensors")
        if not os.path.exists(path):
            continue
        inputs = load_file(path)
        call = lambda: model.forward(inputs["latents"], inputs["timesteps"], inputs["captions"],
                                     inputs["caption_lengths"], inputs["fps"].item(),
                                     inputs["height"].item(), inputs["width"].item())
        with torch.no_grad():
            ref = call()
            ours = inputs["output"].to(ref.device)
            err = ((ours - ref).norm() / ref.norm()).item()
        torch.cuda.reset_peak_memory_stats()
        row = {"name": name, "rel_error_vs_ditserve": err}
        for item in args.also or []:  # LABEL=DIR: another ditserve run on the same inputs
            label, _, folder = item.partition("=")
            other = os.path.join(folder, name + ".safetensors")
            if os.path.exists(other):
                with torch.no_grad():
                    o = load_file(other)["output"].to(ref.device)
                    row[f"rel_error_vs_ditserve_{label}"] = ((o - ref).norm() / ref.norm()).item()
                print(f"{name}: rel. error vs ditserve {label} {row[f'rel_error_vs_ditserve_{label}']:.3e}")
        with torch.no_grad():
            row.update(time_calls(call, args.warmup, args.steps))
        print(f"{name}: eager {row['ms']:.2f} ms/step, rel. error vs ditserve {err:.3e}", flush=True)
        rows.append(row)
        del inputs, ref, ours
    return {"component": "dit", "dtype": "bf16", "attention": "F.scaled_dot_product_attention",
            "rows": rows}


def random_tensor(spec, device, dtype):
    shape = spec["shape"]
    if spec["init"] == "zeros":
        return torch.zeros(shape, device=device, dtype=dtype)
    if spec["init"] == "ones":
        return torch.ones(shape, device=device, dtype=dtype)
    return (torch.randn(shape, device=device, dtype=torch.float32) * spec["std"]).to(dtype)


def bench_vae(args):
    from vae_reference import decode, latent_frames
    with open(args.param_specs) as f:
        specs = json.load(f)
    torch.manual_seed(0)
    p = {s["name"]: random_tensor(s, "cuda", torch.bfloat16) for s in specs}
    width, height = (int(v) for v in args.size.split("x"))
    t_latent = latent_frames(args.frames, 17, 4)
    z = torch.randn(1, 4, t_latent, height // 8, width // 8, device="cuda").to(torch.bfloat16)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        row = time_calls(lambda: decode(p, z, args.frames, 32, 17), args.warmup, args.steps)
    row["name"] = f"vae-decode-{height}p-{args.frames}f"
    print(f"{row['name']}: eager {row['ms']:.2f} ms", flush=True)
    return {"component": "vae", "dtype": "bf16", "rows": [row]}


def bench_t5(args):
    from transformers import T5Config, T5EncoderModel
    torch.backends.cuda.matmul.allow_tf32 = False
    config = T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                      num_heads=64, relative_attention_num_buckets=32,
                      relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                      dropout_rate=0.0, is_encoder_decoder=False, use_cache=False)
    with torch.device("cuda"):
        model = T5EncoderModel(config).to(torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, config.vocab_size, (1, args.tokens), generator=g)
    ids[0, -1] = 1
    ids = ids.cuda()
    mask = torch.ones_like(ids)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        row = time_calls(lambda: model(input_ids=ids, attention_mask=mask).last_hidden_state,
                         args.warmup, args.steps)
    row["name"] = f"t5-encode-{args.tokens}"
    print(f"{row['name']}: eager {row['ms']:.2f} ms", flush=True)
    return {"component": "t5", "dtype": "f32", "rows": [row]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("component", choices=("dit", "vae", "t5"))
    p.add_argument("--weights", help="dit: the checkpoint --export-weights wrote")
    p.add_argument("--dump-dir", help="dit: the row files --dump-dir wrote")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--also", nargs="*", help="dit: LABEL=DIR, row files of another ditserve "
                   "run on the same inputs: their outputs are compared too")
    p.add_argument("--param-specs", help="vae: the specs --param-specs wrote")
    p.add_argument("--frames", type=int, default=51)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--tokens", type=int, default=300)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--json", required=True)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("step_reference.py times CUDA work; no GPU found")
    result = {"dit": bench_dit, "vae": bench_vae, "t5": bench_t5}[args.component](args)
    result.update({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
                   "warmup": args.warmup, "steps": args.steps, "timing": "CUDA events per call (median)"})
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
