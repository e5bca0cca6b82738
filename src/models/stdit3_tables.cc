#include "models/stdit3_tables.h"

#include <cmath>

#include "tensor/error.h"

namespace ditserve {

float round_to_dtype(float value, DType dtype) {
  switch (dtype) {
    case DType::bf16:
      return bf16_to_f32(f32_to_bf16(value));
    case DType::f16:
      return f16_to_f32(f32_to_f16(value));
    default:
      return value;
  }
}

Tensor position_table_2d(std::int64_t rows, std::int64_t cols, std::int64_t dim, double scale) {
  DITSERVE_CHECK(dim > 0 && dim % 4 == 0, "position_table_2d: dim ", dim,
                 " must be a positive multiple of 4");
  DITSERVE_CHECK(rows >= 1 && cols >= 1 && scale > 0, "position_table_2d: bad grid ", rows, "x",
                 cols, " or scale ", scale);
  const std::int64_t half = dim / 2, quarter = dim / 4;
  std::vector<float> inv_freq(static_cast<std::size_t>(quarter));
  for (std::int64_t k = 0; k < quarter; ++k) {
    const float exponent = static_cast<float>(2 * k) / static_cast<float>(half);
    inv_freq[static_cast<std::size_t>(k)] = 1.0f / std::pow(10000.0f, exponent);
  }
  const auto base = static_cast<double>(std::llround(std::sqrt(static_cast<double>(rows * cols))));
  const auto row_step = static_cast<float>(base / static_cast<double>(rows));
  const auto col_step = static_cast<float>(base / static_cast<double>(cols));
  const auto fscale = static_cast<float>(scale);
  Tensor out = Tensor::empty_host({rows * cols, dim}, DType::f32);
  float* o = out.data<float>();
  for (std::int64_t r = 0; r < rows; ++r) {
    const float pr = static_cast<float>(r) / fscale * row_step;
    for (std::int64_t c = 0; c < cols; ++c) {
      const float pc = static_cast<float>(c) / fscale * col_step;
      float* row = o + (r * cols + c) * dim;
      for (std::int64_t k = 0; k < quarter; ++k) {
        const float f = inv_freq[static_cast<std::size_t>(k)];
        row[k] = std::sin(pc * f);
        row[quarter + k] = std::cos(pc * f);
        row[half + k] = std::sin(pr * f);
        row[half + quarter + k] = std::cos(pr * f);
      }
    }
  }
  return out;
}

Tensor rope_angles_rounded(std::int64_t frames, const std::vector<float>& freqs, DType dtype) {
  DITSERVE_CHECK(frames >= 0, "rope_angles_rounded: frames must be >= 0, got ", frames);
  const auto n = static_cast<std::int64_t>(freqs.size());
  Tensor out = Tensor::empty_host({frames, n}, DType::f32);
  float* o = out.data<float>();
  for (std::int64_t s = 0; s < frames; ++s) {
    const float pos = round_to_dtype(static_cast<float>(s), dtype);
    for (std::int64_t i = 0; i < n; ++i) {
      const float f = round_to_dtype(freqs[static_cast<std::size_t>(i)], dtype);
      o[s * n + i] = round_to_dtype(pos * f, dtype);
    }
  }
  return out;
}

}  // namespace ditserve
