#include "kernels/cpu/elementwise.h"

#include "kernels/cpu/strided.h"

namespace ditserve::cpu {
namespace {

// Calls fn(out_row, in_rows..., inner_strides..., inner) for every row of `out`.
template <typename Fn, typename... Inputs>
void for_each_row(const Tensor& out, Fn fn, const Inputs&... inputs) {
  const Shape& shape = out.shape();
  const std::int64_t rows = row_count(shape);
  const std::int64_t inner = inner_size(out);
  float* o = out.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    fn(o + r * inner,
       (inputs.template data<float>() + row_offset(shape, inputs.strides(), r))...,
       inner_stride(inputs)..., inner);
  }
}

}  // namespace

void add_scaled(const Tensor& out, const Tensor& a, const Tensor& b, float alpha) {
  for_each_row(
      out,
      [alpha](float* o, const float* pa, const float* pb, std::int64_t sa, std::int64_t sb,
              std::int64_t n) {
        for (std::int64_t j = 0; j < n; ++j) o[j] = pa[j * sa] + alpha * pb[j * sb];
      },
      a, b);
}

void mul(const Tensor& out, const Tensor& a, const Tensor& b) {
  for_each_row(
      out,
      [](float* o, const float* pa, const float* pb, std::int64_t sa, std::int64_t sb,
         std::int64_t n) {
        for (std::int64_t j = 0; j < n; ++j) o[j] = pa[j * sa] * pb[j * sb];
      },
      a, b);
}

void gated_residual(const Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& y) {
  for_each_row(
      out,
      [](float* o, const float* px, const float* pg, const float* py, std::int64_t sx,
         std::int64_t sg, std::int64_t sy, std::int64_t n) {
        for (std::int64_t j = 0; j < n; ++j) o[j] = px[j * sx] + pg[j * sg] * py[j * sy];
      },
      x, gate, y);
}

}  // namespace ditserve::cpu
