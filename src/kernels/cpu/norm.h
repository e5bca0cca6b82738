#pragma once
// CPU normalisations. x and out are contiguous f32 of equal shape; statistics are
// accumulated in double. weight/bias are contiguous f32 [C], or undefined where allowed.

#include "tensor/tensor.h"

namespace ditserve::cpu {

// Over the last dim C; weight and bias may each be undefined.
void layer_norm(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                float eps);
void rms_norm(const Tensor& out, const Tensor& x, const Tensor& weight, float eps);
// out = LN(x) * (1 + scale) + shift; shift and scale are f32 views expanded to x's shape
// (any strides).
void modulate_layer_norm(const Tensor& out, const Tensor& x, const Tensor& shift,
                         const Tensor& scale, float eps);
// x viewed as [N, S, C] (first dim N, spatial dims flattened to S); groups divides C;
// weight and bias defined.
void group_norm(const Tensor& out, const Tensor& x, int groups, const Tensor& weight,
                const Tensor& bias, float eps);

}  // namespace ditserve::cpu
