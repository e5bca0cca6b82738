"""transformers' T5EncoderModel on a ditserve checkpoint, as the reference for T5Encoder.

Usage: python t5_reference.py CHECKPOINT OUT [--batch 2] [--length 300] [--seed 0]
                               [--max-distance 128] [--eps 1e-6]

CHECKPOINT is what `write_random_checkpoint` (or `ditserve make-weights`) writes for a T5
v1.1 encoder: a directory with model.safetensors.index.json and its shards, or a single
.safetensors file. The configuration is read from the tensor shapes (max_distance and eps
are not stored, so they are arguments). The script draws seeded token ids (each row
`length` long: ids >= 2, then </s> (1), then padding (0); row 0 is full, the others have
random lengths), runs the model in f32 on cuda if present (no TF32), and writes OUT as
safetensors with
  ids     i32 [batch, length]
  lengths i32 [batch]       (the attention mask is arange(length) < lengths)
  hidden  f32 [batch, length, d_model]   last_hidden_state, padding rows included
and metadata: vocab, d_model, d_ff, d_kv, heads, layers, buckets, max_distance, eps and
checkpoint (its absolute path). tests/models/t5_encoder_test.cc (T5ReferenceTest, run with
DITSERVE_T5_REFERENCE=OUT) compares ditserve's T5Encoder with it.
"""
import argparse
import json
import os
import re

import torch
from safetensors.torch import save_file
from transformers import T5Config, T5EncoderModel

from checkpoints import load_state


def load_t5_state(path):
    state = load_state(path, lambda t: t.to(torch.float32))
    if "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    return state


def config_from(state, max_distance, eps):
    vocab, d_model = state["shared.weight"].shape
    table = state["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    buckets, heads = table.shape
    inner = state["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
    d_ff = state["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]
    layers = 1 + max(int(m.group(1)) for name in state
                     if (m := re.match(r"encoder\.block\.(\d+)\.", name)))
    return T5Config(vocab_size=vocab, d_model=d_model, d_kv=inner // heads, d_ff=d_ff,
                    num_layers=layers, num_heads=heads, relative_attention_num_buckets=buckets,
                    relative_attention_max_distance=max_distance, layer_norm_epsilon=eps,
                    feed_forward_proj="gated-gelu", dropout_rate=0.0,
                    is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-distance", type=int, default=128)
    parser.add_argument("--eps", type=float, default=1e-6)
    args = parser.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    state = load_t5_state(args.checkpoint)
    config = config_from(state, args.max_distance, args.eps)
    with torch.device(device):  # XXL's random init is much faster on the GPU
        model = T5EncoderModel(config).to(torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # The embedding may live under either name; both are filled from the same tensor.
    missing = [m for m in missing if m not in ("encoder.embed_tokens.weight", "shared.weight")]
    if missing or unexpected:
        raise SystemExit(f"checkpoint mismatch: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        model.shared.weight.copy_(state["shared.weight"])
        model.encoder.embed_tokens.weight.copy_(state["shared.weight"])
    model.eval()

    gen = torch.Generator().manual_seed(args.seed)
    batch, length = args.batch, args.length
    lengths = torch.randint(1, length + 1, (batch,), generator=gen, dtype=torch.int32)
    lengths[0] = length
    ids = torch.randint(2, config.vocab_size, (batch, length), generator=gen, dtype=torch.int32)
    positions = torch.arange(length, dtype=torch.int32)[None, :]
    ids[positions == (lengths[:, None] - 1)] = 1  # </s>
    ids[positions >= lengths[:, None]] = 0        # <pad>
    mask = (positions < lengths[:, None]).to(torch.int64)

    with torch.no_grad():
        hidden = model(input_ids=ids.to(torch.int64).to(device),
                       attention_mask=mask.to(device)).last_hidden_state
    hidden = hidden.float().cpu().contiguous()

    metadata = {"vocab": config.vocab_size, "d_model": config.d_model, "d_ff": config.d_ff,
                "d_kv": config.d_kv, "heads": config.num_heads, "layers": config.num_layers,
                "buckets": config.relative_attention_num_buckets,
                "max_distance": config.relative_attention_max_distance,
                "eps": repr(config.layer_norm_epsilon),
                "checkpoint": os.path.abspath(args.checkpoint),
                "device": str(device), "torch": torch.__version__}
    save_file({"ids": ids.contiguous(), "lengths": lengths.contiguous(), "hidden": hidden},
              args.out, metadata={k: str(v) for k, v in metadata.items()})
    print(f"wrote {args.out}: hidden {tuple(hidden.shape)} on {device}, "
          f"lengths {lengths.tolist()}, |hidden| max {hidden.abs().max().item():.4g}")


if __name__ == "__main__":
    main()
