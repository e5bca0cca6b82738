#pragma once
// A request's whole denoising state spread over a DeviceGroup between steps, and its move
// to another group of any size and overlap (issue 6, "re-sharding between steps").
//
// What the state is: the latents (f32 [1, C, T, h, w], kept sharded by frame over the
// members with parallel/sharded_tensor.h), the prompt and null caption embeddings with
// their lengths (one copy per member: every member's DiT stages cross-attend to them),
// the sampler options and the index of the next step. Nothing else: the rectified-flow
// sampler is deterministic once the seeded noise has become the first latents (its
// timesteps follow from the options, there is no per-step randomness), so no RNG state
// has to travel.
//
// A move copies only what the new members lack: latent frames that stay on their device
// are not copied (a member whose frames are unchanged keeps its shard tensor) and the
// captions are copied only to members that did not hold them.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "comm/fabric.h"
#include "models/interfaces.h"
#include "parallel/sequence_parallel.h"
#include "parallel/sharded_tensor.h"
#include "pipeline/rectified_flow.h"

namespace ditserve {

struct StateMoveStats {
  std::int64_t latent_bytes_moved = 0;   // latent rows copied between devices
  std::int64_t latent_bytes_kept = 0;    // latent rows already where they are needed
  std::int64_t caption_bytes_moved = 0;  // captions + lengths copied to new members
  std::int64_t caption_bytes_kept = 0;   // members that already held them

  std::int64_t bytes_moved() const { return latent_bytes_moved + caption_bytes_moved; }
};

// `ranks` ordered so that sharding the state's frames over them keeps as many frames on
// their current device as possible (ties keep the given order). Member order decides
// which frames a member holds, so A = {0, 1} -> {1, 2} moves every frame but -> {2, 1}
// only the frames cpu:2 lacks. Exhaustive for up to 8 ranks, the given order beyond.
DeviceGroup least_moving_order(const ShardedTensor& latents, const std::vector<int>& ranks);

class ShardedGenerationState {
 public:
  // Prepares member i's evaluation of the DiT (its model replica on member i's device)
  // from inputs living on that device.
  using PrepareStages =
      std::function<std::unique_ptr<SpatioTemporalStages>(int member, const DenoiseInputs&)>;

  // `state` lives on fabric rank `rank` (which need not be in `group`).
  static ShardedGenerationState shard(Fabric& fabric, const GenerationState& state, int rank,
                                      const DeviceGroup& group);
  // The whole state on member `member`'s device, as a single-device GenerationState.
  GenerationState gather(Fabric& fabric, int member) const;

  const DeviceGroup& group() const { return latents_.group; }
  bool done() const { return step_ >= timesteps_.size(); }
  std::size_t step_index() const { return step_; }
  std::size_t num_steps() const { return timesteps_.size(); }
  const SamplerOptions& options() const { return options_; }
  const ShardedTensor& latents() const { return latents_; }          // frames (dim 2) sharded
  const std::vector<Tensor>& captions() const { return captions_; }  // one per member
  const std::vector<Tensor>& caption_lengths() const { return caption_lengths_; }

  // Moves the state to `to` (any size, any overlap with group()). Adds what it copied
  // and kept to *stats when given. Throws InvalidArgument when `to` is invalid.
  void move_to(Fabric& fabric, const DeviceGroup& to, StateMoveStats* stats = nullptr);

  // One denoising step on group(): every member gathers the whole latents (each embeds
  // the whole grid, see FramePositionParallel), `scheme` runs the DiT on the batch
  // [z, z] with the prompt and null captions, guidance combines the prediction on member
  // 0, and each member updates its own frames with its piece of the velocity, so the
  // latents stay sharded. Element for element the same arithmetic as
  // GenerationState::step. REQUIRES !done().
  // With `sharded_prediction`, the prediction itself stays sharded by frame
  // (scheme.forward_frame_sharded: each member runs the final layer on its frames) and
  // each member applies guidance to its own frames: nothing is gathered on member 0.
  void step(Fabric& fabric, SequenceParallelStep& scheme, const PrepareStages& prepare,
            bool sharded_prediction = false);

 private:
  ShardedGenerationState(ShardedTensor latents, std::vector<Tensor> captions,
                         std::vector<Tensor> caption_lengths, SamplerOptions options,
                         std::size_t step);

  ShardedTensor latents_;
  std::vector<Tensor> captions_;
  std::vector<Tensor> caption_lengths_;
  SamplerOptions options_;
  std::vector<float> timesteps_;
  std::size_t step_ = 0;
};

}  // namespace ditserve
