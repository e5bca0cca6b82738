#pragma once
// Host-side rules of the CUDA backend's GEMM plan cache (kernels/cuda/cublaslt_gemm.cc),
// free of CUDA so they are unit tested on any machine: the options a backend reads once,
// the key a plan is cached under, how much scratch output an autotuning run needs, and
// which timed candidate wins.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace ditserve {

// How a backend plans its GEMMs; read once per backend (CudaBackend's constructor).
struct GemmTuningOptions {
  // Time up to kGemmMaxCandidates heuristic algorithms at a problem's first use and keep
  // the fastest; false keeps cuBLASLt's first heuristic pick (still cached).
  bool autotune = true;
  // Print each new plan (problem, candidate timings, pick) to stderr.
  bool debug = false;

  // DITSERVE_GEMM_AUTOTUNE (default 1) and DITSERVE_GEMM_DEBUG (default 0), each "0" or
  // "1"; any other value throws InvalidArgument naming the variable.
  static GemmTuningOptions from_env();
};

// `value` of environment variable `name` as a flag: unset or empty gives `fallback`,
// "0" false, "1" true; anything else throws InvalidArgument naming `name`.
bool parse_env_flag(const char* name, const char* value, bool fallback);

// Everything a cached cuBLASLt plan (descriptors, layouts, algorithm) depends on. Pointers
// change per call and are not part of it, but their alignments are: the heuristic only
// offers algorithms valid for the alignments it was told.
struct GemmPlanKey {
  int device = 0;
  DType dtype = DType::f32;
  bool transa = false, transb = false;
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0, ldc = 0, ldd = 0;
  std::int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0, stride_d = 0;
  std::int64_t stride_bias = 0;
  int epilogue = 0;  // cublasLtEpilogue_t
  bool has_c = false, has_bias = false;
  std::uint32_t align_a = 0, align_b = 0, align_c = 0, align_d = 0, align_bias = 0;

  bool operator==(const GemmPlanKey&) const = default;
  // One line for logs, e.g. "bf16 m=1152 n=4320 k=1152 TN batch 2 epilogue 4 C bias".
  std::string describe() const;
};

struct GemmPlanKeyHash {
  std::size_t operator()(const GemmPlanKey& key) const;
};

// Largest power of two, at most 256, dividing `address` (0 counts as 256-aligned).
std::uint32_t pointer_alignment(std::uintptr_t address);

// Elements spanned by a batch of column-major rows x cols matrices with leading dimension
// ld, `batch_stride` elements apart: from the first element to one past the last (the
// last matrix's last column ends at its own row count, not at ld). 0 for an empty batch.
std::int64_t strided_extent(std::int64_t rows, std::int64_t cols, std::int64_t ld,
                            std::int64_t batch, std::int64_t batch_stride);

// Heuristic algorithms an autotuning run times, and timed runs per candidate.
inline constexpr int kGemmMaxCandidates = 8;
inline constexpr int kGemmTimedRuns = 5;
// A candidate replaces the heuristic's first pick only when faster by more than this
// fraction, so timing noise does not swap near-equal algorithms (and their rounding)
// between processes or devices.
inline constexpr double kGemmMinGain = 0.03;

// Median of `samples_ms`; nullopt when empty.
std::optional<double> median_ms(std::vector<double> samples_ms);

// Index of the candidate to keep from per-candidate times (in heuristic order; nullopt for
// a candidate that failed to run): the fastest, unless it beats the first candidate that
// ran by no more than `min_gain` (a fraction), in which case that first one. Ties go to
// the lower index. nullopt when no candidate ran.
std::optional<std::size_t> pick_fastest(const std::vector<std::optional<double>>& times_ms,
                                        double min_gain);

}  // namespace ditserve
