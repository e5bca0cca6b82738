#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "tensor/error.h"

namespace ditserve::cpu {
namespace {

blasint blas_dim(std::int64_t value, const char* what) {
  DITSERVE_CHECK(value >= 0 && value <= INT_MAX, "sgemm: ", what, " = ", value,
                 " does not fit OpenBLAS's 32-bit index");
  return static_cast<blasint>(value);
}

// Leading dimension BLAS accepts for a stored [rows, cols] matrix: any value works for a
// single row, but BLAS still demands at least max(1, cols).
blasint leading_dim(std::int64_t ld, std::int64_t rows, std::int64_t cols) {
  if (rows <= 1) return blas_dim(std::max<std::int64_t>(cols, 1), "leading dimension");
  DITSERVE_CHECK(ld >= cols, "sgemm: leading dimension ", ld, " is below the row length ", cols);
  return blas_dim(ld, "leading dimension");
}

float apply(Activation act, float v) {
  switch (act) {
    case Activation::none:
      return v;
    case Activation::gelu_tanh: {
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      return 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
    }
    case Activation::gelu_exact:
      return 0.5f * v * (1.0f + std::erf(v * 0.7071067811865476f));
    case Activation::silu:
      return v / (1.0f + std::exp(-v));
  }
  return v;
}

}  // namespace

void sgemm(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, MatrixRef a, MatrixRef b,
           float beta, float* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  // BLAS implementations differ on whether an empty sum scales c; callers reject k = 0.
  DITSERVE_CHECK(k > 0, "sgemm: empty contraction dim");
  const blasint lda = a.transposed ? leading_dim(a.ld, k, m) : leading_dim(a.ld, m, k);
  const blasint ldb = b.transposed ? leading_dim(b.ld, n, k) : leading_dim(b.ld, k, n);
  cblas_sgemm(CblasRowMajor, a.transposed ? CblasTrans : CblasNoTrans,
              b.transposed ? CblasTrans : CblasNoTrans, blas_dim(m, "m"), blas_dim(n, "n"),
              blas_dim(k, "k"), alpha, a.data, lda, b.data, ldb, beta, c, leading_dim(ldc, m, n));
}

void linear(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
            Activation act) {
  const std::int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  float* y = out.data<float>();
  sgemm(m, n, k, 1.0f, {x.data<float>(), x.stride(0)}, {w.data<float>(), k, true}, 0.0f, y, n);
  if (!bias.defined() && act == Activation::none) return;
  const float* b = bias.defined() ? bias.data<float>() : nullptr;
#pragma omp parallel for schedule(static) if (m * n >= kParallelWork)
  for (std::int64_t i = 0; i < m; ++i) {
    float* row = y + i * n;
    for (std::int64_t j = 0; j < n; ++j) row[j] = apply(act, b ? row[j] + b[j] : row[j]);
  }
}

void linear_residual(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
                     const Tensor& residual, const Tensor& gate) {
  const std::int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  float* y = out.data<float>();
  sgemm(m, n, k, 1.0f, {x.data<float>(), x.stride(0)}, {w.data<float>(), k, true}, 0.0f, y, n);
  const float* b = bias.defined() ? bias.data<float>() : nullptr;
  const float* r = residual.data<float>();
  const std::int64_t residual_stride = residual.stride(0);
  const float* g = gate.defined() ? gate.data<float>() : nullptr;
  const std::int64_t rows_per_sample = gate.defined() ? m / gate.size(0) : m;
  // The composed ops' order: (x w^T + bias) rounded to f32, then times the gate, then added.
#pragma omp parallel for schedule(static) if (m * n >= kParallelWork)
  for (std::int64_t i = 0; i < m; ++i) {
    float* row = y + i * n;
    const float* res = r + i * residual_stride;
    const float* gate_row = g ? g + (i / rows_per_sample) * n : nullptr;
    for (std::int64_t j = 0; j < n; ++j) {
      const float v = b ? row[j] + b[j] : row[j];
      row[j] = res[j] + (gate_row ? gate_row[j] * v : v);
    }
  }
}

void linear_stacked(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias) {
  const std::int64_t groups = out.size(0), n = out.size(2);
  for (std::int64_t g = 0; g < groups; ++g) {
    linear(out.select(0, g), x, w.narrow(0, g * n, n),
           bias.defined() ? bias.narrow(0, g * n, n) : Tensor(), Activation::none);
  }
}

void matmul(const Tensor& out, const Tensor& a, const Tensor& b) {
  const std::int64_t batch = out.size(0), m = out.size(1), n = out.size(2), k = a.size(2);
  // A matrix whose column dim has unit stride is read as stored, else transposed.
  const auto ref = [](const Tensor& t, std::int64_t i) {
    const float* base = t.data<float>() + i * t.stride(0);
    const bool transposed = t.size(2) != 1 && t.stride(2) != 1;
    return transposed ? MatrixRef{base, t.stride(2), true} : MatrixRef{base, t.stride(1)};
  };
  for (std::int64_t i = 0; i < batch; ++i) {
    sgemm(m, n, k, 1.0f, ref(a, i), ref(b, i), 0.0f, out.data<float>() + i * m * n, n);
  }
}

}  // namespace ditserve::cpu
