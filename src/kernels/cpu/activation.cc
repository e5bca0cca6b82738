#include "kernels/cpu/activation.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/strided.h"

namespace ditserve::cpu {
namespace {

template <typename Fn>
void map(const Tensor& out, const Tensor& x, Fn fn) {
  const std::int64_t n = x.numel();
  const float* in = x.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) o[i] = fn(in[i]);
}

}  // namespace

void gelu(const Tensor& out, const Tensor& x, bool tanh_approximation) {
  if (tanh_approximation) {
    map(out, x, [](float v) {
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      const float inner = kSqrt2OverPi * (v + 0.044715f * v * v * v);
      return 0.5f * v * (1.0f + std::tanh(inner));
    });
  } else {
    map(out, x, [](float v) {
      constexpr float kInvSqrt2 = 0.7071067811865476f;
      return 0.5f * v * (1.0f + std::erf(v * kInvSqrt2));
    });
  }
}

void silu(const Tensor& out, const Tensor& x) {
  map(out, x, [](float v) { return v / (1.0f + std::exp(-v)); });
}

void softmax(const Tensor& out, const Tensor& x) {
  const std::int64_t rows = row_count(x.shape());
  const std::int64_t n = inner_size(x);
  const float* in = x.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = in + r * n;
    float* dst = o + r * n;
    const float max = *std::max_element(row, row + n);
    double sum = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      dst[j] = std::exp(row[j] - max);
      sum += dst[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (std::int64_t j = 0; j < n; ++j) dst[j] *= inv;
  }
}

}  // namespace ditserve::cpu
