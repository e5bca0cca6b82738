#pragma once
#include "tensor/tensor.h"

namespace ditserve::cpu {

// Interleaved-pair rotary embedding. x f32 [B, S, H, D] with unit stride on D (other
// strides free); angles f32 contiguous [S, D/2]; out contiguous f32 [B, S, H, D].
void rope(const Tensor& out, const Tensor& x, const Tensor& angles);

}  // namespace ditserve::cpu
