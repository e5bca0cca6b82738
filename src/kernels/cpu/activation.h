#pragma once
// CPU activations. All tensors contiguous f32 with equal shapes.

#include "tensor/tensor.h"

namespace ditserve::cpu {

void gelu(const Tensor& out, const Tensor& x, bool tanh_approximation);
void silu(const Tensor& out, const Tensor& x);
// Softmax over the last dim (max-subtracted, so large inputs do not overflow).
void softmax(const Tensor& out, const Tensor& x);

}  // namespace ditserve::cpu
