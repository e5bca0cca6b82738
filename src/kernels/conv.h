#pragma once
// Convolutions on channels-last tensors. CUDA: cuDNN (NHWC / NDHWC); CPU: im2col + GEMM.
// Weights are channels-last too ([O, k..., C]); checkpoints in PyTorch's [O, C, k...]
// layout are permuted once at load.

#include <array>

#include "kernels/backend.h"

namespace ditserve {

// How f32 convolutions may compute on CUDA: exactly (f32 FMA; what the CPU backend and
// tools/gpu_check's 1e-5 tolerance assume), or with TF32 tensor cores (inputs rounded to
// 10-bit mantissas, f32 accumulation; ~8x the rate). PyTorch convolves f32 in TF32 by
// default (torch.backends.cudnn.allow_tf32), so a model that runs "in f32" in PyTorch
// (Wan's VAE) runs in TF32 there. The CPU backend always computes exactly; 16-bit inputs
// are unaffected.
enum class F32Math { exact, tf32 };

// x [N, H, W, C], w [O, kh, kw, C], bias [O] optional; zero padding on both sides.
Tensor conv2d(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
              std::array<int, 2> stride, std::array<int, 2> padding,
              F32Math math = F32Math::exact);

// x [N, D, H, W, C], w [O, kd, kh, kw, C], bias [O] optional.
Tensor conv3d(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
              std::array<int, 3> stride, std::array<int, 3> padding,
              F32Math math = F32Math::exact);

}  // namespace ditserve
