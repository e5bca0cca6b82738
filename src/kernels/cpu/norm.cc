#include "kernels/cpu/norm.h"

#include <cmath>

#include "kernels/cpu/strided.h"

namespace ditserve::cpu {
namespace {

struct Moments {
  float mean;
  float rstd;
};

// Two-pass mean and inverse standard deviation of n contiguous values.
Moments moments(const float* x, std::int64_t n, float eps) {
  double sum = 0;
  for (std::int64_t j = 0; j < n; ++j) sum += x[j];
  const double mean = sum / static_cast<double>(n);
  double sq = 0;
  for (std::int64_t j = 0; j < n; ++j) sq += (x[j] - mean) * (x[j] - mean);
  const double var = sq / static_cast<double>(n);
  return {static_cast<float>(mean), static_cast<float>(1.0 / std::sqrt(var + eps))};
}

const float* data_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace

void layer_norm(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                float eps) {
  const std::int64_t rows = row_count(x.shape());
  const std::int64_t c = inner_size(x);
  const float* in = x.data<float>();
  const float* w = data_or_null(weight);
  const float* b = data_or_null(bias);
  float* o = out.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = in + r * c;
    float* dst = o + r * c;
    const Moments m = moments(row, c, eps);
    for (std::int64_t j = 0; j < c; ++j) {
      float v = (row[j] - m.mean) * m.rstd;
      if (w) v *= w[j];
      if (b) v += b[j];
      dst[j] = v;
    }
  }
}

void rms_norm(const Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  const std::int64_t rows = row_count(x.shape());
  const std::int64_t c = inner_size(x);
  const float* in = x.data<float>();
  const float* w = data_or_null(weight);
  float* o = out.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = in + r * c;
    float* dst = o + r * c;
    double sq = 0;
    for (std::int64_t j = 0; j < c; ++j) sq += static_cast<double>(row[j]) * row[j];
    const float rstd = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(c) + eps));
    for (std::int64_t j = 0; j < c; ++j) dst[j] = w ? row[j] * rstd * w[j] : row[j] * rstd;
  }
}

void modulate_layer_norm(const Tensor& out, const Tensor& x, const Tensor& shift,
                         const Tensor& scale, float eps) {
  const Shape& shape = x.shape();
  const std::int64_t rows = row_count(shape);
  const std::int64_t c = inner_size(x);
  const std::int64_t shift_stride = inner_stride(shift), scale_stride = inner_stride(scale);
  const float* in = x.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = in + r * c;
    const float* sh = shift.data<float>() + row_offset(shape, shift.strides(), r);
    const float* sc = scale.data<float>() + row_offset(shape, scale.strides(), r);
    float* dst = o + r * c;
    const Moments m = moments(row, c, eps);
    for (std::int64_t j = 0; j < c; ++j) {
      const float normed = (row[j] - m.mean) * m.rstd;
      dst[j] = normed * (1.0f + sc[j * scale_stride]) + sh[j * shift_stride];
    }
  }
}

void group_norm(const Tensor& out, const Tensor& x, int groups, const Tensor& weight,
                const Tensor& bias, float eps) {
  const std::int64_t n = x.size(0);
  const std::int64_t c = x.size(-1);
  const std::int64_t s = n == 0 || c == 0 ? 0 : x.numel() / (n * c);
  const std::int64_t per_group = c / groups;
  const float* in = x.data<float>();
  const float* w = weight.data<float>();
  const float* b = bias.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for collapse(2) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    for (int g = 0; g < groups; ++g) {
      const std::int64_t c0 = static_cast<std::int64_t>(g) * per_group;
      const float* base = in + i * s * c + c0;
      double sum = 0;
      for (std::int64_t p = 0; p < s; ++p) {
        for (std::int64_t j = 0; j < per_group; ++j) sum += base[p * c + j];
      }
      const double count = static_cast<double>(s * per_group);
      const double mean = sum / count;
      double sq = 0;
      for (std::int64_t p = 0; p < s; ++p) {
        for (std::int64_t j = 0; j < per_group; ++j) {
          const double d = base[p * c + j] - mean;
          sq += d * d;
        }
      }
      const float mean_f = static_cast<float>(mean);
      const float rstd = static_cast<float>(1.0 / std::sqrt(sq / count + eps));
      float* dst = o + i * s * c + c0;
      for (std::int64_t p = 0; p < s; ++p) {
        for (std::int64_t j = 0; j < per_group; ++j) {
          dst[p * c + j] = (base[p * c + j] - mean_f) * rstd * w[c0 + j] + b[c0 + j];
        }
      }
    }
  }
}

}  // namespace ditserve::cpu
