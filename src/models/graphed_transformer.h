#pragma once
// A DiffusionTransformer whose step is replayed from a capture (kernels/captured_work.h):
// on CUDA one graph launch per step instead of ~1500 kernel launches from the host.
//
// Per input key (the shapes and dtypes of latents, timesteps, captions and
// caption_lengths, plus fps, height and width: host values a capture bakes into kernel
// arguments) it keeps static input tensors and a static output tensor. The first call for a
// key runs the wrapped model eagerly: that builds every cuDNN/cuBLASLt plan (autotuning
// included), the model's cached tables and the workspace, none of which may happen inside a
// capture. The second call copies its inputs into the static inputs, captures the model's
// forward of them plus a copy into the static output, and replays it; later calls copy the
// inputs in and replay. Each call returns a fresh copy of the static output, so a caller
// may keep outputs across steps.
//
// Per-step values (the latents, the timesteps) reach the model only through tensors; a
// model wrapped here must not read device values on the host nor upload host values in a
// step after its first call for a shape (STDiT3 and WanTransformer cache their tables).
// Not thread-safe, as models are.

#include <cstddef>
#include <list>
#include <memory>
#include <string>

#include "kernels/captured_work.h"
#include "models/interfaces.h"

namespace ditserve {

struct GraphedTransformerOptions {
  // Keys whose capture is kept; the least recently used goes first. Each capture holds
  // its static inputs and output and, on CUDA, the graph's own activation memory (graph
  // memory nodes, not shared with the stream's pool), GBs for a 720p step: enough for the
  // shapes served at once, not for every shape ever seen.
  std::size_t max_graphs = 4;
  // When a capture fails (Error naming the key and the cause): rethrow it, or print it to
  // stderr and return the eager result. Either way that key runs eagerly from then on.
  enum class OnCaptureFailure { rethrow, run_eagerly };
  OnCaptureFailure on_capture_failure = OnCaptureFailure::rethrow;
};

struct GraphedTransformerStats {
  std::size_t eager_calls = 0;  // first calls of a key, and calls of keys whose capture failed
  std::size_t captures = 0;
  std::size_t replays = 0;
  std::size_t evictions = 0;
  std::size_t capture_failures = 0;
  std::string last_failure;  // the key and the cause of the latest failed capture
};

class GraphedTransformer final : public DiffusionTransformer {
 public:
  // REQUIRES: `model` runs on `be` and outlives this object; options.max_graphs >= 1.
  GraphedTransformer(DiffusionTransformer& model, Backend& be,
                     GraphedTransformerOptions options = {});
  ~GraphedTransformer() override;
  GraphedTransformer(const GraphedTransformer&) = delete;
  GraphedTransformer& operator=(const GraphedTransformer&) = delete;

  std::int64_t latent_channels() const override { return model_.latent_channels(); }
  Tensor forward(const DenoiseInputs& inputs) override;

  DiffusionTransformer& wrapped() const { return model_; }
  const GraphedTransformerStats& stats() const { return stats_; }
  std::size_t cached_keys() const { return entries_.size(); }

 private:
  struct Entry;
  Tensor run_eagerly(const DenoiseInputs& inputs);

  DiffusionTransformer& model_;
  Backend& be_;
  GraphedTransformerOptions options_;
  GraphedTransformerStats stats_;
  std::list<Entry> entries_;  // most recently used first
};

// `dit` itself, or the model a GraphedTransformer wraps (what a sequence-parallel step,
// which runs a model's stages eagerly, needs).
DiffusionTransformer& unwrap_graphed(DiffusionTransformer& dit);
const DiffusionTransformer& unwrap_graphed(const DiffusionTransformer& dit);

}  // namespace ditserve
