#pragma once
// Normalisations over the last dim (LayerNorm, RMSNorm, adaLN modulation) and over
// channel groups of a channels-last tensor (GroupNorm). Statistics in f32.

#include "kernels/backend.h"

namespace ditserve {

// (x - mean) / sqrt(var + eps) * weight + bias over the last dim; weight and bias
// ([C], x's dtype) are optional (undefined = no affine).
Tensor layer_norm(Backend& be, const Tensor& x, const Tensor& weight, const Tensor& bias,
                  float eps);

// x * rsqrt(mean(x^2) + eps) * weight over the last dim; weight [C] optional.
Tensor rms_norm(Backend& be, const Tensor& x, const Tensor& weight, float eps);

// adaLN modulation: LayerNorm(x) * (1 + scale) + shift, LayerNorm without affine.
// x [..., C]; shift and scale broadcastable to x (e.g. [B, 1, C] for x [B, N, C]).
Tensor modulate_layer_norm(Backend& be, const Tensor& x, const Tensor& shift,
                           const Tensor& scale, float eps);

// GroupNorm of a channels-last tensor x [N, *spatial, C]: statistics per (n, group) over
// all spatial positions and the C/groups channels of the group; weight, bias [C].
Tensor group_norm(Backend& be, const Tensor& x, int groups, const Tensor& weight,
                  const Tensor& bias, float eps);

}  // namespace ditserve
