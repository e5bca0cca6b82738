#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace ditserve::cpu {
namespace {

// Scores held at once (floats): long sequences are processed in blocks of query rows.
constexpr std::int64_t kScoreBudget = std::int64_t{1} << 22;

// row[j] = softmax_j(row[j] + bias_row[j * bias_stride]) over j < n; bias_row may be null.
void bias_softmax(float* row, std::int64_t n, const float* bias_row, std::int64_t bias_stride) {
  if (bias_row) {
    for (std::int64_t j = 0; j < n; ++j) row[j] += bias_row[j * bias_stride];
  }
  const float max = *std::max_element(row, row + n);
  double sum = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    row[j] = std::exp(row[j] - max);
    sum += row[j];
  }
  const auto inv = static_cast<float>(1.0 / sum);
  for (std::int64_t j = 0; j < n; ++j) row[j] *= inv;
}

}  // namespace

void attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
               const Tensor& key_lengths, const Tensor& bias) {
  const std::int64_t batch = q.size(0), sq = q.size(1), heads = q.size(2), d = q.size(3);
  const std::int64_t sk = k.size(1);
  const std::int64_t block = std::max<std::int64_t>(1, std::min(kScoreBudget / sk, sq));
  std::vector<float> scores(static_cast<std::size_t>(block * sk));
  const std::int64_t ldo = heads * d;
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::int64_t len = key_lengths.defined() ? key_lengths.data<std::int32_t>()[b] : sk;
    for (std::int64_t h = 0; h < heads; ++h) {
      const float* qh = q.data<float>() + b * q.stride(0) + h * q.stride(2);
      const float* kh = k.data<float>() + b * k.stride(0) + h * k.stride(2);
      const float* vh = v.data<float>() + b * v.stride(0) + h * v.stride(2);
      float* oh = out.data<float>() + b * sq * ldo + h * d;
      const float* bias_bh =
          bias.defined() ? bias.data<float>() + b * bias.stride(0) + h * bias.stride(1) : nullptr;
      for (std::int64_t i0 = 0; i0 < sq; i0 += block) {
        const std::int64_t rows = std::min(block, sq - i0);
        float* s = scores.data();
        sgemm(rows, len, d, scale, {qh + i0 * q.stride(1), q.stride(1)}, {kh, k.stride(1), true},
              0.0f, s, sk);
#pragma omp parallel for schedule(static) if (rows * len >= kParallelWork)
        for (std::int64_t r = 0; r < rows; ++r) {
          const float* bias_row = bias_bh ? bias_bh + (i0 + r) * bias.stride(2) : nullptr;
          bias_softmax(s + r * sk, len, bias_row, bias_bh ? bias.stride(3) : 0);
        }
        sgemm(rows, d, len, 1.0f, {s, sk}, {vh, v.stride(1)}, 0.0f, oh + i0 * ldo, ldo);
      }
    }
  }
}

}  // namespace ditserve::cpu
