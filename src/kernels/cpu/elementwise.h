#pragma once
// CPU element-wise kernels. `out` is contiguous f32; inputs are f32 views already
// expanded to out's shape (any strides, including 0 for broadcast dims).

#include "tensor/tensor.h"

namespace ditserve::cpu {

// out = a + alpha * b (alpha = 1 for add).
void add_scaled(const Tensor& out, const Tensor& a, const Tensor& b, float alpha);
void mul(const Tensor& out, const Tensor& a, const Tensor& b);
// out = x + gate * y.
void gated_residual(const Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& y);

}  // namespace ditserve::cpu
