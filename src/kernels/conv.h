#pragma once
// Convolutions on channels-last tensors. CUDA: cuDNN (NHWC / NDHWC); CPU: im2col + GEMM.
// Weights are channels-last too ([O, k..., C]); checkpoints in PyTorch's [O, C, k...]
// layout are permuted once at load.

#include <array>

#include "kernels/backend.h"

namespace ditserve {

// x [N, H, W, C], w [O, kh, kw, C], bias [O] optional; zero padding on both sides.
Tensor conv2d(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
              std::array<int, 2> stride, std::array<int, 2> padding);

// x [N, D, H, W, C], w [O, kd, kh, kw, C], bias [O] optional.
Tensor conv3d(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
              std::array<int, 3> stride, std::array<int, 3> padding);

}  // namespace ditserve
