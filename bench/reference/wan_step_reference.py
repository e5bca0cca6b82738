"""Wan 2.1 in diffusers / transformers, timed beside `ditserve bench step` (issue 10).

  dit   diffusers' WanTransformer3DModel, one denoising step = one call on the batch of
        2 (both guidance branches) that ditserve times, eager and under torch.compile.
        With --weights/--dump-dir (what `bench step --export-weights --dump-dir` wrote):
        ditserve's weights and inputs, and the relative error of ditserve's output against
        the eager one. Without them (--random): weights drawn here, timing only (a 14B
        checkpoint is 28 GB; the time does not depend on the values).
  vae   diffusers' AutoencoderKLWan decode of --frames frames at --size (f32, as Wan runs
        its VAE), random weights.
  umt5  transformers' UMT5EncoderModel (umt5-xxl's configuration) encoding --tokens
        tokens in bf16, random weights.
The configuration of the DiT comes from ditserve's JSON (--config-from, its "config").
diffusers runs as WanPipeline loads it: bf16, with the modules the model keeps in f32
(`_keep_in_fp32_modules`) in f32. Writes --json: {"component", "rows": [{"name", "ms", ...}]}.
"""
import argparse
import json
import os
import time

import torch
from safetensors.torch import load_file

from timing import time_calls


# CUDA when present; the CPU only to try the script on tiny shapes (no timing worth quoting).
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def synchronize():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(call, warmup, steps):
    return time_calls(call, warmup, steps, DEVICE)


def reset_peak():
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()


def keep_fp32_modules(model):
    names = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, module in model.named_modules():
        if any(k in name.split(".") for k in names):
            module.float()
    for name, p in model.named_parameters():  # scale_shift_table is a parameter, not a module
        if name.split(".")[-1] in names:
            p.data = p.data.float()


def load_state(weights_dir):
    index = os.path.join(weights_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else [f for f in os.listdir(weights_dir) if f.endswith(".safetensors")]
    state = {}
    for f in files:
        state.update(load_file(os.path.join(weights_dir, f)))
    return state


def wan_dit(cfg, weights_dir):
    from diffusers import WanTransformer3DModel
    kwargs = dict(patch_size=(1, 2, 2), num_attention_heads=cfg["num_heads"],
                  attention_head_dim=cfg["dim"] // cfg["num_heads"], in_channels=cfg["in_channels"],
                  out_channels=cfg["out_channels"], text_dim=cfg["text_dim"], freq_dim=cfg["freq_dim"],
                  ffn_dim=cfg["ffn_dim"], num_layers=cfg["num_layers"], cross_attn_norm=True,
                  qk_norm="rms_norm_across_heads", eps=cfg["eps"])
    if weights_dir:
        with torch.device(DEVICE):
            model = WanTransformer3DModel(**kwargs)
        missing, unexpected = model.load_state_dict(load_state(weights_dir), strict=False)
        if unexpected or [m for m in missing if "freqs" not in m]:
            raise SystemExit(f"checkpoint mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    else:
        # Straight into bf16 on the GPU: a 14B model in f32 would not fit beside its copy.
        torch.set_default_dtype(torch.bfloat16)
        with torch.device(DEVICE):
            model = WanTransformer3DModel(**kwargs)
        torch.set_default_dtype(torch.float32)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() >= 2:
                    p.normal_(0, 0.02)
    model = model.to(torch.bfloat16).eval()
    keep_fp32_modules(model)
    return model


def bench_dit(args):
    ours = json.load(open(args.config_from))
    cfg = ours["config"]
    model = wan_dit(cfg, args.weights)
    rows_out = []
    for row in ours["rows"]:
        name = row["name"]
        if args.rows and name not in args.rows.split(","):
            continue
        if args.dump_dir:
            d = load_file(os.path.join(args.dump_dir, name + ".safetensors"))
            latents, t, captions, lengths = d["latents"], d["timesteps"], d["captions"], d["caption_lengths"]
        else:
            g = torch.Generator().manual_seed(0)
            b, (nt, nh, nw) = ours["batch"], row["latent"]
            latents = torch.randn(b, cfg["in_channels"], nt, nh, nw, generator=g)
            t = torch.tensor([900.0 - 150.0 * (i % 5) for i in range(b)])
            captions = torch.randn(b, ours["caption_tokens"], cfg["text_dim"], generator=g)
            lengths = torch.full((b,), ours["caption_tokens"], dtype=torch.int32)
        # WanPipeline's padding: rows past the prompt's length zeroed, zero rows up to text_len.
        b, length = captions.shape[0], captions.shape[1]
        context = torch.zeros(b, cfg["text_len"], cfg["text_dim"])
        for i in range(b):
            n = int(lengths[i])
            context[i, :n] = captions[i, :n]
        x = latents.to(DEVICE).to(torch.bfloat16)
        ts = t.to(DEVICE)
        ctx = context.to(DEVICE).to(torch.bfloat16)

        def call(m):
            return m(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, return_dict=False)[0]

        out = {"name": name, "latent": row["latent"], "tokens": row["tokens"]}
        reset_peak()
        with torch.no_grad():
            eager = timed(lambda: call(model), args.warmup, args.steps)
            out["eager_ms"], out["eager_ms_all"] = eager["ms"], eager["ms_all"]
            out["eager_peak_allocated_mib"] = eager["peak_allocated_mib"]
            print(f"{name}: diffusers eager {eager['ms']:.1f} ms/step", flush=True)
            if args.dump_dir:
                ref = call(model).float().cpu()
                mine = d["output"].float()
                out["rel_error"] = float((mine - ref).norm() / ref.norm())
                print(f"{name}: rel. error ditserve vs diffusers {out['rel_error']:.3e}", flush=True)
                del ref
            if args.compile:
                compiled = torch.compile(model)
                t0 = time.perf_counter()
                call(compiled)
                synchronize()
                out["compile_first_call_s"] = time.perf_counter() - t0
                comp = timed(lambda: call(compiled), args.warmup, args.steps)
                out["compiled_ms"], out["compiled_ms_all"] = comp["ms"], comp["ms_all"]
                print(f"{name}: diffusers torch.compile {comp['ms']:.1f} ms/step "
                      f"(first call {out['compile_first_call_s']:.0f} s)", flush=True)
        rows_out.append(out)
    return {"component": "dit", "reference": "diffusers WanTransformer3DModel", "rows": rows_out}


def bench_vae(args):
    from diffusers import AutoencoderKLWan
    with torch.device(DEVICE):
        vae = AutoencoderKLWan().eval()
    w, h = (int(v) for v in args.size.split("x"))
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 16, 1 + (args.frames - 1) // 4, h // 8, w // 8, generator=g).to(DEVICE)
    reset_peak()
    with torch.no_grad():
        row = timed(lambda: vae.decode(z).sample, args.warmup, args.steps)
    row["name"] = f"vae-decode-{h}p-{args.frames}f"
    print(f"{row['name']}: diffusers eager {row['ms']:.1f} ms", flush=True)
    return {"component": "vae", "dtype": "f32", "reference": "diffusers AutoencoderKLWan", "rows": [row]}


def bench_umt5(args):
    from transformers import UMT5Config, UMT5EncoderModel
    config = UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                        num_heads=64, relative_attention_num_buckets=32,
                        relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                        dropout_rate=0.0, is_encoder_decoder=False, use_cache=False)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(DEVICE):
        model = UMT5EncoderModel(config).eval()
    torch.set_default_dtype(torch.float32)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, config.vocab_size, (1, args.tokens), generator=g)
    ids[0, -1] = 1
    ids = ids.to(DEVICE)
    mask = torch.ones_like(ids)
    reset_peak()
    with torch.no_grad():
        row = timed(lambda: model(input_ids=ids, attention_mask=mask).last_hidden_state,
                         args.warmup, args.steps)
    row["name"] = f"t5-encode-{args.tokens}"
    print(f"{row['name']}: transformers eager {row['ms']:.2f} ms", flush=True)
    return {"component": "t5", "dtype": "bf16", "reference": "transformers UMT5EncoderModel", "rows": [row]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("component", choices=("dit", "vae", "umt5"))
    p.add_argument("--config-from", help="dit: ditserve's bench JSON (its config and rows)")
    p.add_argument("--weights", help="dit: the checkpoint --export-weights wrote")
    p.add_argument("--dump-dir", help="dit: the row files --dump-dir wrote")
    p.add_argument("--rows", default="", help="dit: only these rows (default: all of the JSON's)")
    p.add_argument("--compile", action="store_true", help="dit: also time torch.compile")
    p.add_argument("--frames", type=int, default=81)
    p.add_argument("--size", default="832x480")
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--json", required=True)
    args = p.parse_args()
    if args.component == "dit" and not args.config_from:
        p.error("dit needs --config-from")
    if bool(args.weights) != bool(args.dump_dir):
        p.error("--weights and --dump-dir go together")
    result = {"dit": bench_dit, "vae": bench_vae, "umt5": bench_umt5}[args.component](args)
    result["torch"] = torch.__version__
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
