#pragma once
// Scaled-dot-product attention. CUDA, bf16/f16: tensor-core kernels for sequences of <= 32
// (attention_short) and for <= 320 keys (attention_few_keys), else cuDNN 9's fused flash
// attention; f32: a direct kernel. CPU: exact reference with f32 softmax.

#include <optional>

#include "kernels/backend.h"

namespace ditserve {

struct AttentionParams {
  // Softmax scale; 1/sqrt(head_dim) when unset (T5 uses 1).
  std::optional<float> scale;
  // i32 [B] on q's device: batch b attends to keys [0, key_lengths[b]) only.
  // REQUIRES 1 <= key_lengths[b] <= Sk. Undefined: all keys.
  Tensor key_lengths;
  // Additive score bias broadcastable to [B, H, Sq, Sk] (e.g. T5's [1, H, Sq, Sk]).
  Tensor bias;
};

// q [B, Sq, H, D]; k, v [B, Sk, H, D]; same dtype and device; each with unit stride on D
// (views out of a fused qkv projection are fine). Returns contiguous [B, Sq, H, D].
Tensor attention(Backend& be, const Tensor& q, const Tensor& k, const Tensor& v,
                 const AttentionParams& params = {});

}  // namespace ditserve
