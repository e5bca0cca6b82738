#pragma once
// The q/k preparation of a DiT self-attention (Open-Sora's qk_norm, then RoPE), in one
// pass over the fused qkv projection.

#include "kernels/backend.h"

namespace ditserve {

struct NormedQK {
  Tensor q, k;  // [N, L, H, D] each
};

// From qkv [N, L, 3, H, D] (q, k, v along dim 2; unit stride on D): q =
// apply_rope(rms_norm(q, q_weight, eps), angles) and k likewise with k_weight; without
// angles (undefined) no rotation. Computes exactly what those ops compute (the same
// rounding to the storage dtype after the norm and after the rotation). The fused CUDA
// kernel writes the results over qkv's q and k parts and returns views of them (so the
// caller must own qkv); the composed path returns new tensors. v is never touched.
// q_weight, k_weight [D] in qkv's dtype; angles f32 [L, D/2] on qkv's device.
NormedQK qk_norm_rope(Backend& be, const Tensor& qkv, const Tensor& q_weight,
                      const Tensor& k_weight, float eps, const Tensor& angles);

}  // namespace ditserve
