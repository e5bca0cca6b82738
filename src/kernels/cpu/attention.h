#pragma once
// CPU reference attention: exact scores, f32 softmax, GEMMs on OpenBLAS.

#include "tensor/tensor.h"

namespace ditserve::cpu {

// out [B, Sq, H, D] contiguous; q [B, Sq, H, D], k/v [B, Sk, H, D] f32 with unit stride
// on D; key_lengths contiguous i32 [B] with values in [1, Sk], or undefined; bias f32
// [B, H, Sq, Sk] (any strides, e.g. expanded), or undefined.
void attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
               const Tensor& key_lengths, const Tensor& bias);

}  // namespace ditserve::cpu
