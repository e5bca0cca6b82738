#include "kernels/cpu/embedding.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/error.h"

namespace ditserve::cpu {
namespace {

std::vector<std::int64_t> load_ids(const Tensor& ids) {
  const std::int64_t n = ids.numel();
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = ids.dtype() == DType::i32 ? ids.data<std::int32_t>()[i] : ids.data<std::int64_t>()[i];
  }
  return out;
}

}  // namespace

void embedding(const Tensor& out, const Tensor& table, const Tensor& ids) {
  const std::int64_t vocab = table.size(0), c = table.size(1);
  const std::vector<std::int64_t> rows = load_ids(ids);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    DITSERVE_CHECK(rows[i] >= 0 && rows[i] < vocab, "embedding: id ", rows[i],
                   " (element ", i, " of ids) is outside the table's [0, ", vocab, ")");
  }
  const float* src = table.data<float>();
  float* dst = out.data<float>();
  const std::int64_t n = static_cast<std::int64_t>(rows.size());
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    std::memcpy(dst + i * c, src + rows[i] * c, static_cast<std::size_t>(c) * sizeof(float));
  }
}

void timestep_embedding(const Tensor& out, const Tensor& t, int dim, bool cos_first,
                        float max_period) {
  const std::int64_t batch = t.size(0);
  const int half = dim / 2;
  std::vector<float> freqs(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) {
    freqs[i] = static_cast<float>(
        std::exp(-std::log(static_cast<double>(max_period)) * i / static_cast<double>(half)));
  }
  const float* ts = t.data<float>();
  float* o = out.data<float>();
  for (std::int64_t b = 0; b < batch; ++b) {
    float* row = o + b * dim;
    for (int i = 0; i < half; ++i) {
      const double arg = ts[b] * freqs[i];  // the f32 product, widened
      const float c = static_cast<float>(std::cos(arg)), s = static_cast<float>(std::sin(arg));
      row[i] = cos_first ? c : s;
      row[half + i] = cos_first ? s : c;
    }
    if (dim % 2 == 1) row[dim - 1] = 0.0f;
  }
}

}  // namespace ditserve::cpu
