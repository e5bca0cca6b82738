#include "kernels/cpu/conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace ditserve::cpu {
namespace {

// im2col scratch held at once (floats).
constexpr std::int64_t kColumnBudget = std::int64_t{1} << 22;

struct Geometry {
  std::int64_t n, d, h, w, c;  // input
  std::int64_t kd, kh, kw;     // kernel
  std::int64_t od, oh, ow;     // output
  std::array<int, 3> stride, padding;

  std::int64_t patch() const { return kd * kh * kw * c; }
};

// col[0, patch) = the receptive field of output position p (row-major over n, od, oh, ow),
// zeros where it reaches into the padding.
void gather_patch(const Geometry& g, const float* x, std::int64_t p, float* col) {
  const std::int64_t ow = p % g.ow, oh = p / g.ow % g.oh, od = p / (g.ow * g.oh) % g.od,
                     n = p / (g.ow * g.oh * g.od);
  const std::size_t run = static_cast<std::size_t>(g.c) * sizeof(float);
  for (std::int64_t a = 0; a < g.kd; ++a) {
    const std::int64_t id = od * g.stride[0] - g.padding[0] + a;
    for (std::int64_t b = 0; b < g.kh; ++b) {
      const std::int64_t ih = oh * g.stride[1] - g.padding[1] + b;
      for (std::int64_t e = 0; e < g.kw; ++e) {
        const std::int64_t iw = ow * g.stride[2] - g.padding[2] + e;
        float* dst = col + ((a * g.kh + b) * g.kw + e) * g.c;
        if (id < 0 || id >= g.d || ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) {
          std::memset(dst, 0, run);
        } else {
          std::memcpy(dst, x + (((n * g.d + id) * g.h + ih) * g.w + iw) * g.c, run);
        }
      }
    }
  }
}

}  // namespace

void conv3d(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
            std::array<int, 3> stride, std::array<int, 3> padding) {
  const Geometry g{x.size(0),   x.size(1),   x.size(2),   x.size(3), x.size(4),  // input
                   w.size(1),   w.size(2),   w.size(3),                          // kernel
                   out.size(1), out.size(2), out.size(3),                        // output
                   stride,      padding};
  const std::int64_t outputs = w.size(0), patch = g.patch();
  const std::int64_t positions = g.n * g.od * g.oh * g.ow;
  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  float* y = out.data<float>();
  const bool pointwise = patch == g.c && stride == std::array<int, 3>{1, 1, 1} &&
                         padding == std::array<int, 3>{0, 0, 0};
  if (pointwise) {  // 1x1(x1) kernel: x already is the column matrix
    sgemm(positions, outputs, patch, 1.0f, {xd, patch}, {wd, patch, true}, 0.0f, y, outputs);
  } else {
    const std::int64_t block =
        std::max<std::int64_t>(1, std::min(kColumnBudget / patch, positions));
    std::vector<float> cols(static_cast<std::size_t>(block * patch));
    for (std::int64_t p0 = 0; p0 < positions; p0 += block) {
      const std::int64_t rows = std::min(block, positions - p0);
#pragma omp parallel for schedule(static) if (rows * patch >= kParallelWork)
      for (std::int64_t r = 0; r < rows; ++r) gather_patch(g, xd, p0 + r, cols.data() + r * patch);
      sgemm(rows, outputs, patch, 1.0f, {cols.data(), patch}, {wd, patch, true}, 0.0f,
            y + p0 * outputs, outputs);
    }
  }
  if (!bias.defined()) return;
  const float* b = bias.data<float>();
#pragma omp parallel for schedule(static) if (positions * outputs >= kParallelWork)
  for (std::int64_t p = 0; p < positions; ++p) {
    float* row = y + p * outputs;
    for (std::int64_t o = 0; o < outputs; ++o) row[o] += b[o];
  }
}

}  // namespace ditserve::cpu
