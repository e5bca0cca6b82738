// Attention through cuDNN's fused flash-attention engine. The graph below is the pattern
// that engine recognises (the same one cuDNN's frontend emits for SDPA):
//   S = Q K^T; S *= scale; [S += bias]; [S = padded ? S : -inf];
//   P = exp(S - max(S)) / sum(exp(S - max(S)));  O = P V
// with key lengths expressed as cuDNN's padding mask (per-batch sequence lengths).
// It comes in two variants: with the softmax statistics max + log(sum) as a virtual
// output (the training pattern, which ditserve always used) and without them (the
// frontend's inference pattern, generate_stats = false), which some cuDNN versions match
// with other engines and some reject.
//
// Choosing a plan, once per problem (plan key: shapes, strides, dtype, mask, bias): the
// first engine configuration of the stats pattern took 6.1 ms per call on STDiT3's 720p
// spatial attention where PyTorch's own cuDNN SDPA call took 5.3-5.6 ms (other runs,
// docs/PERFORMANCE.md), so with tuning on, at a problem's first call up to
// kMaxPlansPerPattern finalised configurations of each variant are timed on the call's
// own data (one warm-up and kTimedRuns interleaved runs each, one stream sync) and the
// fastest is cached, if it beats the stats pattern's first configuration by more than
// kGemmMinGain (noise must not swap equal engines). The output never aliases the inputs
// in ditserve; should it, the runs would read their own output, so tuning is skipped.
// Tuning is opt-in (DITSERVE_CUDNN_AUTOTUNE=1) until it has been checked and timed on a
// GPU; by default the stats pattern's first configuration is used, as before;
// DITSERVE_CUDNN_DEBUG=1 prints the candidates, their times and the pick.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "kernels/cuda/candidate_timing.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cudnn_graph.h"
#include "kernels/cuda/library_ops.h"
#include "kernels/gemm_plan.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

enum Uid : std::int64_t {
  kQ = 1, kK, kV, kO, kScale, kBias, kSeqKv, kSeqQ, kNegInf,
};

__global__ void fill_i32_kernel(std::int32_t* out, std::int64_t n, std::int32_t value) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = value;
}

// Logical [B, H, S, D] dims with the strides of a [B, S, H, D] view.
std::vector<std::int64_t> bhsd_strides(const Tensor& t) {
  return {t.stride(0), t.stride(2), t.stride(1), t.stride(3)};
}

std::string plan_key(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                     const Tensor& key_lengths, const Tensor& bias) {
  std::ostringstream key;
  key << "sdpa " << dtype_name(q.dtype());
  for (const Tensor* t : {&q, &k, &v, &out, &bias}) {
    if (!t->defined()) {
      key << " -";
      continue;
    }
    key << " " << shape_str(t->shape()) << shape_str(t->strides());
  }
  key << (key_lengths.defined() ? " lengths" : " full");
  return key.str();
}

// Finalised configurations of cuDNN's heuristics for one problem, in heuristic order
// (up to `max_plans`); `with_stats` picks the pattern variant.
std::vector<std::shared_ptr<CudnnGraph::Plan>> build_plans(CudaBackend& be, const Tensor& q,
                                                           const Tensor& k, const Tensor& v,
                                                           const Tensor& out, bool padded,
                                                           const Tensor& bias, bool with_stats,
                                                           const std::string& key, int max_plans) {
  const std::int64_t b = q.size(0), sq = q.size(1), h = q.size(2), d = q.size(3);
  const std::int64_t sk = k.size(1);
  const cudnnDataType_t io = cudnn_type(q.dtype());
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  CudnnGraph g(be.cudnn());

  auto q_t = g.tensor({kQ, io, {b, h, sq, d}, bhsd_strides(q)});
  // K enters the first matmul transposed: [B, H, D, Sk].
  auto kt_t = g.tensor({kK, io, {b, h, d, sk}, {k.stride(0), k.stride(2), k.stride(3), k.stride(1)}});
  auto v_t = g.tensor({kV, io, {b, h, sk, d}, bhsd_strides(v)});
  auto o_t = g.tensor({kO, io, {b, h, sq, d}, bhsd_strides(out)});
  auto scale_t = g.tensor({kScale, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true});

  cudnnBackendDescriptor_t seq_q = nullptr, seq_kv = nullptr;
  if (padded) {
    seq_kv = g.tensor({kSeqKv, CUDNN_DATA_INT32, {b, 1, 1, 1}, {1, 1, 1, 1}});
    seq_q = g.tensor({kSeqQ, CUDNN_DATA_INT32, {b, 1, 1, 1}, {1, 1, 1, 1}});
  }
  const std::vector<std::int64_t> scores{b, h, sq, sk};
  auto s = g.virtual_tensor(f32, scores);
  g.matmul(q_t, kt_t, s, seq_q, seq_kv, nullptr, padded);
  auto scaled = g.virtual_tensor(f32, scores);
  g.pointwise(CUDNN_POINTWISE_MUL, f32, s, scale_t, scaled);
  auto last = scaled;
  if (bias.defined()) {
    std::vector<std::int64_t> bias_dims(bias.shape().begin(), bias.shape().end());
    std::vector<std::int64_t> bias_strides(bias.strides().begin(), bias.strides().end());
    auto bias_t = g.tensor({kBias, cudnn_type(bias.dtype()), bias_dims, bias_strides});
    auto biased = g.virtual_tensor(f32, scores);
    g.pointwise(CUDNN_POINTWISE_ADD, f32, last, bias_t, biased);
    last = biased;
  }
  if (padded) {
    auto row = g.virtual_tensor(CUDNN_DATA_INT32, scores);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, last, nullptr, row, nullptr, 2);
    auto col = g.virtual_tensor(CUDNN_DATA_INT32, scores);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, last, nullptr, col, nullptr, 3);
    auto row_ok = g.virtual_tensor(CUDNN_DATA_BOOLEAN, scores);
    g.pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, row, seq_q, row_ok);
    auto col_ok = g.virtual_tensor(CUDNN_DATA_BOOLEAN, scores);
    g.pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, col, seq_kv, col_ok);
    auto keep = g.virtual_tensor(CUDNN_DATA_BOOLEAN, scores);
    g.pointwise(CUDNN_POINTWISE_LOGICAL_AND, CUDNN_DATA_BOOLEAN, row_ok, col_ok, keep);
    auto neg_inf = g.tensor({kNegInf, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true});
    auto masked = g.virtual_tensor(f32, scores);
    g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, last, neg_inf, masked, keep);
    last = masked;
  }
  const std::vector<std::int64_t> rows{b, h, sq, 1};
  auto row_max = g.virtual_tensor(f32, rows);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, last, row_max);
  auto centered = g.virtual_tensor(f32, scores);
  g.pointwise(CUDNN_POINTWISE_SUB, f32, last, row_max, centered);
  auto exps = g.virtual_tensor(f32, scores);
  g.pointwise(CUDNN_POINTWISE_EXP, f32, centered, nullptr, exps);
  auto row_sum = g.virtual_tensor(f32, rows);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, exps, row_sum);
  if (with_stats) {
    // The softmax statistics (max + log(sum)) of the training pattern, virtual here.
    auto log_sum = g.virtual_tensor(f32, rows);
    g.pointwise(CUDNN_POINTWISE_LOG, f32, row_sum, nullptr, log_sum);
    auto stats = g.virtual_tensor(f32, rows);
    g.pointwise(CUDNN_POINTWISE_ADD, f32, row_max, log_sum, stats);
  }
  // The engine wants the probabilities in the I/O type for the second matmul.
  auto probs = g.virtual_tensor(io, scores);
  g.pointwise(CUDNN_POINTWISE_DIV, f32, exps, row_sum, probs);
  g.matmul(probs, v_t, o_t, seq_q, nullptr, seq_kv, false);
  return g.build_candidates(key + (with_stats ? " [stats]" : " [no stats]"),
                            /*exact_f32=*/false, max_plans);
}

// Configurations timed per pattern variant, and timed runs of each after its warm-up.
constexpr int kMaxPlansPerPattern = 6;
constexpr int kTimedRuns = 3;
// A candidate needing more workspace than this is not tried unless it is the first: the
// backend's workspace never shrinks, and flash-attention engines need little or none.
constexpr std::int64_t kMaxTuningWorkspaceBytes = std::int64_t{64} << 20;

struct Candidate {
  std::shared_ptr<CudnnGraph::Plan> plan;
  const char* pattern;  // "stats" or "no stats", for logs
};

// Bytes [begin, end) that a view's elements span (non-negative strides).
std::pair<std::uintptr_t, std::uintptr_t> byte_span(const Tensor& t) {
  const auto begin = reinterpret_cast<std::uintptr_t>(t.raw_data());
  std::int64_t last = 0;
  for (std::int64_t i = 0; i < t.dim(); ++i) {
    if (t.size(i) == 0) return {begin, begin};
    last += (t.size(i) - 1) * std::abs(t.stride(i));
  }
  return {begin, begin + static_cast<std::uintptr_t>(last + 1) * dtype_size(t.dtype())};
}

// True if `out`'s bytes overlap those of any defined input.
bool overlaps_inputs(const Tensor& out, std::initializer_list<const Tensor*> inputs) {
  const auto [out_begin, out_end] = byte_span(out);
  for (const Tensor* t : inputs) {
    if (!t->defined()) continue;
    const auto [begin, end] = byte_span(*t);
    if (begin < out_end && out_begin < end) return true;
  }
  return false;
}

// Median milliseconds of kTimedRuns executions of each candidate (after one warm-up),
// nullopt for one cuDNN refuses to launch. Rounds launch every candidate once, so clocks
// settling during the measurement do not favour those timed last. Each run writes the
// real output (the caller's execute overwrites it). Waits for the stream once.
std::vector<std::optional<double>> time_candidates(CudaBackend& be,
                                                   const std::vector<Candidate>& candidates,
                                                   const std::vector<std::int64_t>& uids,
                                                   const std::vector<void*>& pointers) {
  std::int64_t workspace = 0;
  for (const Candidate& c : candidates) workspace = std::max(workspace, c.plan->workspace_bytes);
  // One buffer large enough for all: no reallocation between timed launches.
  if (workspace > 0) be.workspace(static_cast<std::size_t>(workspace));
  return time_candidates_interleaved(be, candidates.size(), kTimedRuns, [&](std::size_t i) {
    return try_execute(be, *candidates[i].plan, uids, pointers) == CUDNN_STATUS_SUCCESS;
  });
}

void print_choice(const std::string& key, const std::vector<Candidate>& candidates,
                  const std::vector<std::optional<double>>& times_ms, std::size_t chosen,
                  const char* note) {
  std::ostringstream os;
  os << "ditserve cudnn attention plan: " << key << note << "\n";
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    os << "  #" << i << " " << candidates[i].pattern << " " << candidates[i].plan->engine
       << " workspace " << candidates[i].plan->workspace_bytes << " B: ";
    if (times_ms.empty()) {
      os << "not timed";
    } else if (!times_ms[i]) {
      os << "failed to launch or skipped";
    } else {
      os << *times_ms[i] << " ms";
    }
    os << (i == chosen ? "  <- chosen" : "") << "\n";
  }
  std::cerr << os.str();
}

// The plan for one problem (nullptr: no engine takes it), made at its first call with
// that call's uids and pointers (the seq_q fill already queued on be's stream).
std::shared_ptr<CudnnGraph::Plan> choose_plan(CudaBackend& be, const Tensor& out, const Tensor& q,
                                              const Tensor& k, const Tensor& v,
                                              const Tensor& key_lengths, const Tensor& bias,
                                              const std::string& key,
                                              const std::vector<std::int64_t>& uids,
                                              const std::vector<void*>& pointers) {
  const CudnnTuningOptions& options = be.cudnn_plans().options();
  const bool padded = key_lengths.defined();
  if (!options.autotune) {
    // ditserve's choice before autotuning: the stats pattern's first configuration.
    auto plans = build_plans(be, q, k, v, out, padded, bias, /*with_stats=*/true, key, 1);
    return plans.empty() ? nullptr : plans.front();
  }
  std::vector<Candidate> candidates;
  for (auto& plan : build_plans(be, q, k, v, out, padded, bias, true, key, kMaxPlansPerPattern)) {
    candidates.push_back({std::move(plan), "stats"});
  }
  try {
    for (auto& plan :
         build_plans(be, q, k, v, out, padded, bias, false, key, kMaxPlansPerPattern)) {
      candidates.push_back({std::move(plan), "no stats"});
    }
  } catch (const Error& e) {
    // Expected on cuDNN versions without the inference pattern: the stats one stands.
    if (options.debug) std::cerr << "cuDNN " << key << ": no-stats pattern unavailable: " << e.what() << "\n";
  }
  if (candidates.empty()) return nullptr;
  // Candidates beyond the first that need an outsized workspace are not tried.
  const std::int64_t first_workspace = candidates.front().plan->workspace_bytes;
  std::erase_if(candidates, [&](const Candidate& c) {
    return c.plan->workspace_bytes > std::max(first_workspace, kMaxTuningWorkspaceBytes);
  });
  if (candidates.size() == 1) {
    if (options.debug) print_choice(key, candidates, {}, 0, " (one candidate)");
    return candidates.front().plan;
  }
  if (overlaps_inputs(out, {&q, &k, &v, &bias, &key_lengths})) {
    if (options.debug) print_choice(key, candidates, {}, 0, " (output overlaps an input: not tuned)");
    return candidates.front().plan;
  }
  const std::vector<std::optional<double>> times_ms = time_candidates(be, candidates, uids, pointers);
  // None launched: keep the first, whose execute then reports cuDNN's error.
  const std::size_t chosen = pick_fastest(times_ms, kGemmMinGain).value_or(0);
  if (options.debug) print_choice(key, candidates, times_ms, chosen, "");
  return candidates[chosen].plan;
}

}  // namespace

bool attention_cudnn(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                     const Tensor& v, float scale, const Tensor& key_lengths,
                     const Tensor& bias) {
  if (q.dtype() != DType::bf16 && q.dtype() != DType::f16) return false;
  if (q.size(3) % 8 != 0 || q.size(3) > 256) return false;
  if (bias.defined() && bias.dtype() != q.dtype()) return false;
  // Plans are built on the current device (cuDNN loads the engines' kernels into its
  // context): it must be this backend's, whichever thread or device came before.
  DeviceGuard device(be.device_index());
  const std::string key = plan_key(q, k, v, out, key_lengths, bias);
  auto& cache = be.cudnn_plans();
  if (cache.contains(key) && cache.get(key) == nullptr) return false;

  float scale_value = scale;
  float neg_inf = -std::numeric_limits<float>::infinity();
  std::vector<std::int64_t> uids{kQ, kK, kV, kO, kScale};
  std::vector<void*> pointers{q.raw_data(), k.raw_data(), v.raw_data(), out.raw_data(), &scale_value};
  if (bias.defined()) {
    uids.push_back(kBias);
    pointers.push_back(bias.raw_data());
  }
  Tensor seq_q;
  if (key_lengths.defined()) {
    const std::int64_t b = q.size(0);
    seq_q = be.empty({b}, DType::i32);
    {
      fill_i32_kernel<<<static_cast<unsigned>((b + 255) / 256), 256, 0, be.stream()>>>(
          seq_q.data<std::int32_t>(), b, static_cast<std::int32_t>(q.size(1)));
      DITSERVE_CUDA_CHECK_LAUNCH();
    }
    uids.insert(uids.end(), {kSeqKv, kSeqQ, kNegInf});
    pointers.insert(pointers.end(), {key_lengths.raw_data(), seq_q.raw_data(), &neg_inf});
  }
  if (!cache.contains(key)) {
    cache.put(key, choose_plan(be, out, q, k, v, key_lengths, bias, key, uids, pointers));
  }
  const auto plan = cache.get(key);
  if (plan == nullptr) return false;
  execute(be, *plan, uids, pointers);
  return true;
}

}  // namespace ditserve::cuda
