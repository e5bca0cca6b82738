#include "kernels/rope.h"

#include <algorithm>
#include <cmath>

#include "kernels/copy.h"
#include "kernels/cpu/rope.h"
#include "kernels/dispatch.h"

namespace ditserve {

Tensor apply_rope(Backend& be, const Tensor& x, const Tensor& angles) {
  constexpr std::string_view op = "apply_rope";
  detail::check_float(op, "x", be, x);
  detail::check_on_backend(op, "angles", be, angles);
  DITSERVE_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, op, ": x is ", x.describe(),
                 "; expected [B, S, H, D] with D even");
  DITSERVE_CHECK(angles.dtype() == DType::f32, op, ": angles is ", angles.describe(),
                 "; angles are f32 whatever x's dtype");
  DITSERVE_CHECK(angles.dim() == 2 && angles.size(0) == x.size(1) &&
                     angles.size(1) == x.size(3) / 2,
                 op, ": angles is ", angles.describe(), " but x is ", x.describe(),
                 "; expected [", x.size(1), ", ", x.size(3) / 2, "]");
  // The kernels read pairs from a unit-stride last dim; other strides are free.
  const Tensor src = x.size(3) > 1 && x.stride(3) != 1 ? contiguous(be, x) : x;
  const Tensor ang = contiguous(be, angles);
  Tensor out = be.empty(x.shape(), x.dtype());
  if (be.device().is_cpu()) {
    cpu::rope(out, src, ang);
  } else {
    DITSERVE_ON_CUDA(cuda::rope(cuda::as_cuda(be), out, src, ang));
  }
  return out;
}

Tensor rope_angles_1d(std::int64_t positions, std::int64_t dim, double theta) {
  DITSERVE_CHECK(positions >= 0, "rope_angles_1d: positions must be >= 0, got ", positions);
  DITSERVE_CHECK(dim > 0 && dim % 2 == 0, "rope_angles_1d: dim must be even and > 0, got ",
                 dim);
  DITSERVE_CHECK(theta > 0, "rope_angles_1d: theta must be > 0, got ", theta);
  const std::int64_t half = dim / 2;
  Tensor out = Tensor::empty_host({positions, half}, DType::f32);
  float* o = out.data<float>();
  for (std::int64_t i = 0; i < half; ++i) {
    const double freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(dim));
    for (std::int64_t s = 0; s < positions; ++s) {
      o[s * half + i] = static_cast<float>(static_cast<double>(s) * freq);
    }
  }
  return out;
}

Tensor rope_angles_3d(std::array<std::int64_t, 3> grid, std::array<std::int64_t, 3> dims,
                      double theta) {
  for (int k = 0; k < 3; ++k) {
    DITSERVE_CHECK(grid[k] >= 0, "rope_angles_3d: grid[", k, "] must be >= 0, got ", grid[k]);
    DITSERVE_CHECK(dims[k] > 0 && dims[k] % 2 == 0, "rope_angles_3d: dims[", k,
                   "] must be even and > 0, got ", dims[k]);
  }
  DITSERVE_CHECK(theta > 0, "rope_angles_3d: theta must be > 0, got ", theta);
  // Each section is a 1D table over its own axis; token (t, h, w) concatenates rows.
  const Tensor sections[3] = {rope_angles_1d(grid[0], dims[0], theta),
                              rope_angles_1d(grid[1], dims[1], theta),
                              rope_angles_1d(grid[2], dims[2], theta)};
  const std::int64_t width = (dims[0] + dims[1] + dims[2]) / 2;
  Tensor out = Tensor::empty_host({grid[0] * grid[1] * grid[2], width}, DType::f32);
  float* o = out.data<float>();
  std::int64_t token = 0;
  for (std::int64_t t = 0; t < grid[0]; ++t) {
    for (std::int64_t h = 0; h < grid[1]; ++h) {
      for (std::int64_t w = 0; w < grid[2]; ++w, ++token) {
        const std::int64_t pos[3] = {t, h, w};
        float* row = o + token * width;
        for (int k = 0; k < 3; ++k) {
          const std::int64_t half = dims[k] / 2;
          const float* src = sections[k].data<float>() + pos[k] * half;
          row = std::copy(src, src + half, row);
        }
      }
    }
  }
  return out;
}

}  // namespace ditserve
