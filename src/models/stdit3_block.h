#pragma once
// One STDiT3Block (Open-Sora's `spatial_blocks.{i}` / `temporal_blocks.{i}`): adaLN-single
// modulated self-attention with q/k RMSNorm, ungated cross-attention to the caption
// tokens, and a GELU(tanh) MLP. Spatial blocks attend within a frame, temporal blocks
// along time at each spatial position (with RoPE).

#include <string>
#include <vector>

#include "models/weights.h"

namespace ditserve {

struct STDiT3Config;
struct STDiT3Step;

class STDiT3Block {
 public:
  STDiT3Block(const STDiT3Config& config, const WeightLoader& weights, bool temporal);

  // Appends this block's tensors under `prefix` (e.g. "spatial_blocks.3.").
  static void append_params(std::vector<ParamSpec>& specs, const STDiT3Config& config,
                            const std::string& prefix);

  // tokens [B, F, P, C] contiguous -> same shape. Spatial: attention over the P tokens of
  // each frame (P must be the whole frame). Temporal: over the F frames of each position
  // (F must be all frames, matching step.rope_angles).
  Tensor forward(Backend& be, const Tensor& tokens, const STDiT3Step& step) const;

 private:
  // h [B, F, P, C] (the modulated norm1 output, contiguous) -> the attention output
  // [B, F, P, C] before attn.proj, in h's row order: over the P tokens of each frame
  // (spatial) or the F frames of each position (temporal, rotated by rope_angles f32
  // [F, head_dim / 2]; undefined: no RoPE).
  Tensor self_attention(Backend& be, const Tensor& h, const Tensor& rope_angles) const;
  // qkv [N, L, 3, H, D] (q, k, v along dim 2; any strides with unit stride on D, owned by
  // the caller, which may find q and k overwritten) -> attention over L, [N, L, H, D]
  // contiguous, after the q/k RMSNorm and RoPE (rope_angles [L, D / 2] or undefined).
  Tensor attend(Backend& be, const Tensor& qkv, const Tensor& rope_angles) const;
  // x [B, F, P, C] -> x + cross_attn(x) (the residual add fused into cross_attn.proj).
  Tensor cross_attention(Backend& be, const Tensor& x, const STDiT3Step& step) const;

  bool temporal_;
  std::int64_t heads_;
  std::int64_t head_dim_;
  bool qk_norm_;
  Tensor scale_shift_table_;  // [6, C]
  Tensor qkv_w_, qkv_b_, q_norm_, k_norm_, proj_w_, proj_b_;
  Tensor q_w_, q_b_, kv_w_, kv_b_, cross_proj_w_, cross_proj_b_;
  Tensor fc1_w_, fc1_b_, fc2_w_, fc2_b_;
};

}  // namespace ditserve
