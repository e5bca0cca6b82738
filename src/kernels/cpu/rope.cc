#include "kernels/cpu/rope.h"

#include <cmath>

#include "kernels/cpu/strided.h"

namespace ditserve::cpu {

void rope(const Tensor& out, const Tensor& x, const Tensor& angles) {
  const Shape& shape = x.shape();
  const std::int64_t seq = shape[1], heads = shape[2], d = shape[3], half = d / 2;
  const std::int64_t rows = row_count(shape);
  const float* in = x.data<float>();
  const float* ang = angles.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t s = (r / heads) % seq;
    const float* src = in + row_offset(shape, x.strides(), r);
    const float* theta = ang + s * half;
    float* dst = o + r * d;
    for (std::int64_t i = 0; i < half; ++i) {
      const float c = std::cos(theta[i]), sn = std::sin(theta[i]);
      const float x0 = src[2 * i], x1 = src[2 * i + 1];
      dst[2 * i] = x0 * c - x1 * sn;
      dst[2 * i + 1] = x1 * c + x0 * sn;
    }
  }
}

}  // namespace ditserve::cpu
