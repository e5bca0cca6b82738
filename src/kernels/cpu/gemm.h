#pragma once
// CPU matrix products on OpenBLAS (f32). Also the GEMM under the CPU attention and
// convolution kernels.

#include <cstdint>

#include "kernels/gemm.h"
#include "tensor/tensor.h"

namespace ditserve::cpu {

// Elements of work below which the element-wise loops around the GEMMs (epilogues,
// im2col, softmax) stay on one thread: starting the OpenMP team would cost more.
inline constexpr std::int64_t kParallelWork = std::int64_t{1} << 15;

// One operand of sgemm: a row-major matrix with row stride `ld`, read transposed when
// `transposed` (so a [rows, cols] operand stored as [cols, rows] needs no copy).
struct MatrixRef {
  const float* data;
  std::int64_t ld;
  bool transposed = false;
};

// c[m, n] (row stride ldc) = alpha * a[m, k] @ b[k, n] + beta * c.
// REQUIRES: k >= 1; each ld at least the stored row length (ignored for a single stored row).
void sgemm(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, MatrixRef a, MatrixRef b,
           float beta, float* c, std::int64_t ldc);

// out [M, N] contiguous = act(x [M, K] @ w [N, K]^T + bias [N]); x has unit column stride
// and row stride x.stride(0); w contiguous; bias contiguous or undefined.
void linear(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
            Activation act);

// out [M, N] contiguous = residual + gate * (x @ w^T + bias), x and w as linear();
// residual [M, N] with unit column stride; gate [S, N] contiguous or undefined (no
// gate), where S divides M and row i belongs to sample i / (M / S).
void linear_residual(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
                     const Tensor& residual, const Tensor& gate);

// out [G, M, N] contiguous: out[g] = x [M, K] @ w[g N : (g + 1) N]^T + bias[g N : (g + 1) N],
// x as linear(); w [G N, K] contiguous; bias [G N] contiguous or undefined.
void linear_stacked(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias);

// out [batch, M, N] contiguous = a [batch, M, K] @ b [batch, K, N]. In each operand one
// of the two matrix dims has unit stride and the other a valid leading dimension; the
// batch stride may be 0 (shared operand).
void matmul(const Tensor& out, const Tensor& a, const Tensor& b);

}  // namespace ditserve::cpu
