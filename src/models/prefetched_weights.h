#pragma once
// random_weights() generated up front by all cores (a tensor's values come in chunks that
// depend only on (seed, name, chunk index), so the cores share even the largest tensor and
// give the same values for any thread count), then handed out once each:
// what loads a full-size model with random weights in seconds rather than minutes (the
// benchmarks, `generate --random-weights`, the built-in tiny models).

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "models/weights.h"

namespace ditserve {

class PrefetchedRandomWeights final : public WeightSource {
 public:
  // Generates every tensor of `specs` (f32) with up to `threads` threads (0: one per core,
  // at most 32). Throws what random_weights() throws.
  PrefetchedRandomWeights(std::vector<ParamSpec> specs, std::uint64_t seed, unsigned threads = 0);

  bool contains(const std::string& name) const override;
  // The prefetched tensor the first time a name is asked for with its spec's shape (then
  // dropped, so memory falls as a model loads); generated again on any later call.
  Tensor get(const std::string& name, const Shape& expected) const override;
  std::string describe() const override;

  // The tensors not yet handed out, rounded to bf16, as a sharded safetensors checkpoint
  // in `dir` (names as in the specs). Throws Error naming a tensor already handed out.
  void export_bf16(const std::filesystem::path& dir) const;

 private:
  std::unique_ptr<WeightSource> generator_;
  std::vector<ParamSpec> specs_;
  std::map<std::string, std::size_t> index_;
  mutable std::mutex mutex_;
  mutable std::vector<Tensor> tensors_;  // guarded by mutex_ after construction
};

}  // namespace ditserve
