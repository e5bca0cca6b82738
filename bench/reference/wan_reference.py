"""diffusers' WanTransformer3DModel and transformers' UMT5EncoderModel on seeded random
weights, as references for ditserve's WanTransformer and T5Encoder (UMT5).

Usage: python wan_reference.py OUT_DIR [--seed 0]

Writes, for each case, a checkpoint NAME.safetensors (the module's own state dict, i.e.
the diffusers / transformers tensor names) and NAME_ref.safetensors holding the inputs
and the module's f32 output, with the configuration in its metadata:
  wan_tiny     tiny-wan: dim 96, 4 heads of 24, 2 layers, text_dim 64, text_len 64
  wan_wide     dim 256, 2 heads of 128 (the released head size: RoPE split 44/42/42)
  umt5_tiny    d_model 64, 4 heads of 16, 3 layers, 160 tokens (log-spaced and clamped
               relative-position buckets), a bias table per layer
The Wan inputs are latents [2, 16, 3, 6, 8], timesteps {999, 321.5}, captions of 7 rows
with lengths {7, 4}; the reference pads them as WanPipeline does (rows past the length
zeroed, then zero rows up to text_len). Runs in f32 on cuda when present (no TF32).
tests/models/wan_reference_test.cc (DITSERVE_WAN_REFERENCE=OUT_DIR) compares.
"""
import argparse
import json
import os
import traceback

import torch
from safetensors.torch import save_file


def randomise(module, gen, dim_of_table):
    """Weights whose every part matters: var-preserving linears, non-trivial norms/biases."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            shape = p.shape
            if "scale_shift_table" in name:
                v = torch.randn(shape, generator=gen) / dim_of_table ** 0.5
            elif "relative_attention_bias" in name:
                v = torch.randn(shape, generator=gen)
            elif name.endswith("shared.weight") or name.endswith("embed_tokens.weight"):
                v = torch.randn(shape, generator=gen)
            elif p.dim() == 1 and ("norm" in name) and name.endswith("weight"):
                v = 1 + 0.2 * torch.randn(shape, generator=gen)
            elif p.dim() == 1:
                v = 0.1 * torch.randn(shape, generator=gen)
            else:
                fan_in = p[0].numel()
                v = torch.randn(shape, generator=gen) / fan_in ** 0.5
            p.copy_(v.to(p.dtype))


def wan_case(out_dir, name, heads, head_dim, ffn, layers, text_dim, text_len, seed, device):
    from diffusers import WanTransformer3DModel

    dim = heads * head_dim
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=head_dim,
        in_channels=16, out_channels=16, text_dim=text_dim, freq_dim=256, ffn_dim=ffn,
        num_layers=layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6)
    gen = torch.Generator().manual_seed(seed)
    randomise(model, gen, dim)
    model = model.to(device=device, dtype=torch.float32).eval()
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out_dir, name + ".safetensors"))

    latents = torch.randn(2, 16, 3, 6, 8, generator=gen)
    timesteps = torch.tensor([999.0, 321.5])
    captions = torch.randn(2, 7, text_dim, generator=gen)
    lengths = torch.tensor([7, 4], dtype=torch.int32)
    padded = torch.zeros(2, text_len, text_dim)
    for b in range(2):
        padded[b, : lengths[b]] = captions[b, : lengths[b]]
    with torch.no_grad():
        out = model(hidden_states=latents.to(device), timestep=timesteps.to(device),
                    encoder_hidden_states=padded.to(device), return_dict=False)[0]
    out = out.float().cpu().contiguous()
    meta = {"dim": dim, "heads": heads, "ffn_dim": ffn, "layers": layers, "text_dim": text_dim,
            "text_len": text_len, "checkpoint": name + ".safetensors", "device": str(device),
            "torch": torch.__version__, "module": "diffusers.WanTransformer3DModel"}
    save_file({"latents": latents.contiguous(), "timesteps": timesteps, "captions": captions,
               "lengths": lengths, "output": out},
              os.path.join(out_dir, name + "_ref.safetensors"),
              metadata={k: str(v) for k, v in meta.items()})
    print(f"{name}: output {tuple(out.shape)}, |out| max {out.abs().max().item():.4g}, "
          f"{sum(p.numel() for p in model.parameters())} parameters")


def umt5_case(out_dir, name, seed, device, length=160):
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(vocab_size=512, d_model=64, d_kv=16, d_ff=160, num_layers=3,
                        num_heads=4, relative_attention_num_buckets=32,
                        relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                        dropout_rate=0.0, layer_norm_epsilon=1e-6, is_encoder_decoder=False,
                        use_cache=False)
    model = UMT5EncoderModel(config)
    gen = torch.Generator().manual_seed(seed + 1)
    randomise(model, gen, 1)
    model = model.to(device=device, dtype=torch.float32).eval()
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    # Both names hold the embedding the encoder stack looks tokens up in, whether or not
    # this transformers version ties it to `shared` (and keeps both in its state dict).
    embedding = model.encoder.embed_tokens.weight.detach().float().cpu().contiguous()
    state["shared.weight"] = embedding
    state["encoder.embed_tokens.weight"] = embedding.clone()
    save_file(state, os.path.join(out_dir, name + ".safetensors"))

    lengths = torch.tensor([length, 57], dtype=torch.int32)
    ids = torch.randint(2, config.vocab_size, (2, length), generator=gen, dtype=torch.int32)
    positions = torch.arange(length, dtype=torch.int32)[None, :]
    ids[positions == (lengths[:, None] - 1)] = 1
    ids[positions >= lengths[:, None]] = 0
    mask = (positions < lengths[:, None]).to(torch.int64)
    with torch.no_grad():
        hidden = model(input_ids=ids.to(torch.int64).to(device),
                       attention_mask=mask.to(device)).last_hidden_state
    hidden = hidden.float().cpu().contiguous()
    meta = {"vocab": 512, "d_model": 64, "d_ff": 160, "d_kv": 16, "heads": 4, "layers": 3,
            "buckets": 32, "max_distance": 128, "eps": "1e-06",
            "checkpoint": name + ".safetensors", "device": str(device),
            "torch": torch.__version__, "module": "transformers.UMT5EncoderModel"}
    save_file({"ids": ids.contiguous(), "lengths": lengths, "hidden": hidden},
              os.path.join(out_dir, name + "_ref.safetensors"),
              metadata={k: str(v) for k, v in meta.items()})
    print(f"{name}: hidden {tuple(hidden.shape)}, |hidden| max {hidden.abs().max().item():.4g}")


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
    print(json.dumps({"torch": torch.__version__, "device": str(device)}))
    failed = 0
    # Each case on its own: one missing package must not lose the others' references.
    for case in (lambda: umt5_case(args.out_dir, "umt5_tiny", args.seed, device),
                 lambda: wan_case(args.out_dir, "wan_tiny", 4, 24, 192, 2, 64, 64, args.seed, device),
                 lambda: wan_case(args.out_dir, "wan_wide", 2, 128, 512, 2, 64, 64, args.seed + 7,
                                  device)):
        try:
            case()
        except Exception:  # noqa: BLE001 - report and go on
            traceback.print_exc()
            failed += 1
    import diffusers
    import transformers
    print(json.dumps({"diffusers": diffusers.__version__, "transformers": transformers.__version__}))
    raise SystemExit(failed)

if __name__ == "__main__":
    main()
