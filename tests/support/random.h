#pragma once
// Test helpers: seeded random host tensors and error measures against references.

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "tensor/tensor.h"

namespace ditserve::testing {

// f32 host tensor with entries uniform in [lo, hi), from a fixed seed.
inline Tensor random_tensor(const Shape& shape, std::uint32_t seed, float lo = -1.0f,
                            float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(static_cast<std::size_t>(shape_numel(shape)));
  for (float& v : values) v = dist(rng);
  return Tensor::from_vector(values, shape);
}

// Host f32 tensor holding 0, 1, 2, ... in row-major order.
inline Tensor iota_tensor(const Shape& shape) {
  std::vector<float> values(static_cast<std::size_t>(shape_numel(shape)));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  return Tensor::from_vector(values, shape);
}

// ||a - b|| / ||b|| over all elements (b is the reference); NaN anywhere gives +inf.
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

inline double relative_error(const Tensor& a, const Tensor& b) {
  return relative_error(a.to_vector_f32(), b.to_vector_f32());
}

}  // namespace ditserve::testing
