#pragma once
// Ops served by NVIDIA's libraries. Same conventions as cuda_kernels.h.

#include <array>

#include "kernels/gemm.h"
#include "tensor/tensor.h"

namespace ditserve::cuda {

class CudaBackend;

// out [M, N] = act(x [M, K] (row stride ldx, unit column stride) @ w [N, K]^T + bias).
// x, w, out, bias share one dtype (f32, bf16 or f16).
void linear(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& w,
            const Tensor& bias, Activation act);
// out [M, N] contiguous = residual [M, N] (unit column stride) + gate * (x @ w^T + bias);
// gate [S, N] contiguous or undefined, S dividing M (row i is sample i / (M / S)). One
// cuBLASLt GEMM with beta = 1 onto the residual, batched over the samples with the gate
// folded into a per-sample copy of w.
void linear_residual(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& w,
                     const Tensor& bias, const Tensor& residual, const Tensor& gate);
// out [G, M, N] contiguous, out[g] = x [M, K] (row stride ldx, unit column stride) @
// w[g N : (g + 1) N]^T + bias[g N : (g + 1) N]; w [G N, K] contiguous, bias [G N] contiguous
// or undefined. One cuBLASLt GEMM batched over the G weight blocks (x shared, stride 0).
void linear_stacked(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& w,
                    const Tensor& bias);
// out [batch, M, N] = a [batch, M, K] @ b [batch, K, N] with batch stride 0 allowed for b;
// each operand's matrix dims have one unit stride.
void matmul(CudaBackend& be, const Tensor& out, const Tensor& a, const Tensor& b);

// cuDNN fused flash attention (bf16/f16, head dim a multiple of 8 up to 256).
// Returns false (queuing nothing) when cuDNN has no engine for this configuration.
bool attention_cudnn(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                     const Tensor& v, float scale, const Tensor& key_lengths,
                     const Tensor& bias);

// cuDNN convolution, channels-last: x [N, *spatial, C], w [O, *k, C], out [N, *out, O];
// nd = 2 or 3 spatial dims; bias [O] or undefined. f32 inputs use only engines that
// compute exactly unless allow_tf32 (kernels/conv.h: F32Math).
void convolution(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& w,
                 const Tensor& bias, int nd, std::array<int, 3> stride,
                 std::array<int, 3> padding, bool allow_tf32);

}  // namespace ditserve::cuda
