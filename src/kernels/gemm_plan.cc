#include "kernels/gemm_plan.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "tensor/error.h"

namespace ditserve {

bool parse_env_flag(const char* name, const char* value, bool fallback) {
  if (value == nullptr || value[0] == '\0') return fallback;
  if (std::strcmp(value, "0") == 0) return false;
  if (std::strcmp(value, "1") == 0) return true;
  throw InvalidArgument(std::string(name) + " is '" + value + "'; expected 0 or 1");
}

GemmTuningOptions GemmTuningOptions::from_env() {
  GemmTuningOptions options;
  options.autotune = parse_env_flag("DITSERVE_GEMM_AUTOTUNE",
                                    std::getenv("DITSERVE_GEMM_AUTOTUNE"), options.autotune);
  options.debug =
      parse_env_flag("DITSERVE_GEMM_DEBUG", std::getenv("DITSERVE_GEMM_DEBUG"), options.debug);
  return options;
}

std::string GemmPlanKey::describe() const {
  std::string s = std::string(dtype_name(dtype)) + " m=" + std::to_string(m) +
                  " n=" + std::to_string(n) + " k=" + std::to_string(k) + " " +
                  (transa ? "T" : "N") + (transb ? "T" : "N") + " ld " + std::to_string(lda) +
                  "/" + std::to_string(ldb) + "/" + std::to_string(ldd);
  if (batch > 1) {
    s += " batch " + std::to_string(batch) + " strides " + std::to_string(stride_a) + "/" +
         std::to_string(stride_b) + "/" + std::to_string(stride_d);
  }
  s += " epilogue " + std::to_string(epilogue);
  if (has_c) s += " C(ld " + std::to_string(ldc) + ")";
  if (has_bias) s += " bias";
  s += " align " + std::to_string(align_a) + "/" + std::to_string(align_b) + "/" +
       std::to_string(align_c) + "/" + std::to_string(align_d) + " cuda:" + std::to_string(device);
  return s;
}

std::size_t GemmPlanKeyHash::operator()(const GemmPlanKey& key) const {
  // boost::hash_combine's mixing over every field of the key.
  std::size_t h = 0;
  const auto mix = [&h](std::uint64_t v) {
    h ^= std::hash<std::uint64_t>{}(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  };
  mix(static_cast<std::uint64_t>(key.device));
  mix(static_cast<std::uint64_t>(key.dtype));
  mix((key.transa ? 1u : 0u) | (key.transb ? 2u : 0u) | (key.has_c ? 4u : 0u) |
      (key.has_bias ? 8u : 0u));
  for (const std::int64_t v : {key.m, key.n, key.k, key.lda, key.ldb, key.ldc, key.ldd,
                               key.batch, key.stride_a, key.stride_b, key.stride_c,
                               key.stride_d, key.stride_bias}) {
    mix(static_cast<std::uint64_t>(v));
  }
  mix(static_cast<std::uint64_t>(key.epilogue));
  for (const std::uint32_t v : {key.align_a, key.align_b, key.align_c, key.align_d,
                                key.align_bias}) {
    mix(v);
  }
  return h;
}

std::uint32_t pointer_alignment(std::uintptr_t address) {
  std::uint32_t align = 256;
  while (align > 1 && address % align != 0) align /= 2;
  return align;
}

std::int64_t strided_extent(std::int64_t rows, std::int64_t cols, std::int64_t ld,
                            std::int64_t batch, std::int64_t batch_stride) {
  if (rows <= 0 || cols <= 0 || batch <= 0) return 0;
  return (batch - 1) * batch_stride + (cols - 1) * ld + rows;
}

std::optional<double> median_ms(std::vector<double> samples_ms) {
  if (samples_ms.empty()) return std::nullopt;
  const std::size_t mid = samples_ms.size() / 2;
  std::nth_element(samples_ms.begin(), samples_ms.begin() + mid, samples_ms.end());
  if (samples_ms.size() % 2 == 1) return samples_ms[mid];
  const double upper = samples_ms[mid];
  const double lower = *std::max_element(samples_ms.begin(), samples_ms.begin() + mid);
  return (lower + upper) / 2;
}

std::optional<std::size_t> pick_fastest(const std::vector<std::optional<double>>& times_ms,
                                        double min_gain) {
  std::optional<std::size_t> first, fastest;
  for (std::size_t i = 0; i < times_ms.size(); ++i) {
    if (!times_ms[i]) continue;
    if (!first) first = i;
    if (!fastest || *times_ms[i] < *times_ms[*fastest]) fastest = i;
  }
  if (!fastest) return std::nullopt;
  // The fastest must save more than min_gain of the first's time to replace it.
  if (*times_ms[*fastest] >= *times_ms[*first] * (1.0 - min_gain)) return first;
  return fastest;
}

}  // namespace ditserve
