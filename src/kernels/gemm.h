#pragma once
// Matrix products. CPU: OpenBLAS (f32). CUDA: cuBLASLt, bf16/f16 with f32 accumulation
// (f32 inputs accumulate in f32 without TF32), bias, GELU and residual adds fused in the
// epilogue.

#include "kernels/backend.h"

namespace ditserve {

enum class Activation { none, gelu_tanh, gelu_exact, silu };

// y[..., N] = act(x[..., K] @ w[N, K]^T + bias[N]): PyTorch's nn.Linear layout.
// x's last dim must have unit stride and its leading dims must flatten to one stride;
// w must be contiguous; bias is optional. Output is contiguous, x's dtype.
Tensor linear(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias = {},
              Activation act = Activation::none);

// out = residual + gate * (x @ w^T + bias): a linear whose output is added onto the
// residual stream (adaLN blocks' attention projection and MLP output), one GEMM instead of
// a GEMM plus one or two element-wise passes over the activations.
// x [S, ..., K] with linear()'s layout rules; residual has x's shape with N for K (any
// strides); gate [S, N] (optional) scales sample s's output channels; bias optional.
// Output is new and contiguous, x's dtype. On CUDA the gate is folded into a per-sample
// weight diag(gate[s]) w (rounded to x's dtype once) and the sum stays f32 until the one
// final rounding; the composed linear + gated_residual rounds the product first.
Tensor linear_residual(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
                       const Tensor& residual, const Tensor& gate = {});

// out[g, ..., N] = x[..., K] @ w[g N : (g + 1) N, K]^T + bias[g N : (g + 1) N] for g < groups:
// linear() with w's output rows cut into `groups` equal blocks, each block's output written
// as its own contiguous tensor (STDiT3's temporal q, k and v, each one [B, F, P, C] in the
// token order of x, so that no permuted copy of the activations is needed). x and w follow
// linear()'s rules; w [groups * N, K]; bias [groups * N] optional. Output [groups, ...x's
// leading dims, N], contiguous, x's dtype. One batched GEMM on CUDA.
Tensor linear_stacked(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
                      std::int64_t groups);

// c[..., M, N] = a[..., M, K] @ b[..., K, N]. Batch dims of a and b must be equal, or b
// may have none (shared right operand). Each operand's matrix dims need one unit stride
// (so transposed views are free). Output is contiguous.
Tensor matmul(Backend& be, const Tensor& a, const Tensor& b);

}  // namespace ditserve
