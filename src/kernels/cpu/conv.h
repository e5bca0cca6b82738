#pragma once
// CPU convolution, channels-last, by im2col + sgemm in blocks of output positions
// (bounded scratch memory whatever the input size).

#include <array>

#include "tensor/tensor.h"

namespace ditserve::cpu {

// 3-D convolution with zero padding; 2-D callers pass depth 1 (x [N, 1, H, W, C],
// w [O, 1, kh, kw, C], stride and padding {1, sh, sw} and {0, ph, pw}).
// x [N, D, H, W, C], w [O, kd, kh, kw, C], out [N, Do, Ho, Wo, O] all contiguous f32;
// bias f32 [O] contiguous or undefined.
void conv3d(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
            std::array<int, 3> stride, std::array<int, 3> padding);

}  // namespace ditserve::cpu
