#pragma once
// Per-backend cache of cuBLASLt GEMM plans: a problem's matmul descriptor, its four matrix
// layouts and the chosen algorithm, made (and, with autotuning, timed) at the problem's
// first use and reused by every later call with the same GemmPlanKey. Not thread-safe, as
// the backend it belongs to (one thread drives a backend at a time).

#include <cstddef>
#include <memory>
#include <unordered_map>

#include "kernels/gemm_plan.h"

namespace ditserve::cuda {

// Defined in cublaslt_gemm.cc; the cache only owns them.
struct GemmPlan;

class GemmPlanCache {
 public:
  explicit GemmPlanCache(GemmTuningOptions options) : options_(options) {}

  const GemmTuningOptions& options() const { return options_; }
  // The plan made for `key`, or nullptr if none was made yet.
  GemmPlan* find(const GemmPlanKey& key) const {
    const auto it = plans_.find(key);
    return it == plans_.end() ? nullptr : it->second.get();
  }
  GemmPlan& put(const GemmPlanKey& key, std::shared_ptr<GemmPlan> plan) {
    return *(plans_[key] = std::move(plan));
  }
  // Plans made so far (one per distinct problem).
  std::size_t size() const { return plans_.size(); }

 private:
  GemmTuningOptions options_;
  // shared_ptr: its deleter is bound where GemmPlan is complete.
  std::unordered_map<GemmPlanKey, std::shared_ptr<GemmPlan>, GemmPlanKeyHash> plans_;
};

}  // namespace ditserve::cuda
