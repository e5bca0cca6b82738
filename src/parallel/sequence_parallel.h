#pragma once
// One forward of a spatio-temporal DiT spread over a DeviceGroup. The scheme (how tokens
// are sharded and exchanged) is an interface, so another one (Ulysses head sharding or
// ring attention inside the blocks) can be added beside the frame/position scheme and
// chosen per request without touching the models or the caller.

#include <cstdint>
#include <memory>
#include <vector>

#include "comm/fabric.h"
#include "parallel/stages.h"

namespace ditserve {

class SequenceParallelStep {
 public:
  virtual ~SequenceParallelStep() = default;

  // members[i] is group member i's prepared evaluation, living on
  // fabric.device(group.ranks[i]); all were prepared from the same inputs. Returns the
  // prediction (members[0]->final's output) on the group's first member, equal to the
  // single-device forward up to rounding.
  // Throws InvalidArgument when the group is invalid or members do not match it.
  virtual Tensor forward(Fabric& fabric, const DeviceGroup& group,
                         const std::vector<SpatioTemporalStages*>& members) = 0;

  // The same prediction left sharded by frame: member i gets, on its device, the latent
  // frames of even_split(prediction frames, k) in member order. The default runs
  // forward() and scatters its frames from the first member.
  virtual std::vector<Tensor> forward_frame_sharded(
      Fabric& fabric, const DeviceGroup& group, const std::vector<SpatioTemporalStages*>& members);
};

// Open-Sora's dynamic sequence parallelism (DSP): spatial blocks run on frame shards,
// temporal blocks on spatial-position shards, with an all-to-all at every switch. Shards
// follow even_split, so any group size works for any grid; a member whose shard is empty
// (more members than frames or positions) skips that block. Each member embeds the whole
// grid from its own copy of the latents and keeps its frames: a latent copy is far smaller
// than the token shard it replaces. The frame-sharded tokens are gathered to the first
// member for the final layer, which needs the whole grid.
//
// forward_frame_sharded() skips that gather when the model has final_frames(): each member
// runs the final layer on its own frames, so the prediction (and the latents updated
// from it) never leaves the members; a patch size above 1 in time falls back to the
// default.
class FramePositionParallel final : public SequenceParallelStep {
 public:
  Tensor forward(Fabric& fabric, const DeviceGroup& group,
                 const std::vector<SpatioTemporalStages*>& members) override;
  std::vector<Tensor> forward_frame_sharded(
      Fabric& fabric, const DeviceGroup& group,
      const std::vector<SpatioTemporalStages*>& members) override;

 private:
  // embed and the blocks; member i's frame-sharded tokens and its first frame.
  std::vector<Tensor> blocks(Fabric& fabric, const DeviceGroup& group,
                             const std::vector<SpatioTemporalStages*>& members,
                             std::vector<std::int64_t>* first_frame);
};

}  // namespace ditserve
