#include "runtime/group_step.h"

#include <memory>

#include "parallel/replicate.h"
#include "parallel/sequence_parallel.h"
#include "tensor/error.h"

namespace ditserve::runtime {

void group_step(Fabric& fabric, const DeviceGroup& group, const std::vector<STDiT3*>& members,
                GenerationState& state) {
  group.validate(fabric);
  DITSERVE_CHECK(members.size() == group.ranks.size(), "group_step: ", members.size(),
                 " models for a group of ", group.size());
  Backend& leader = fabric.device(group.ranks[0]);
  if (group.size() == 1) {
    state.step(leader, *members[0]);
    return;
  }
  const DenoiseInputs in = state.next_inputs(leader);
  const auto everywhere = [&](const Tensor& t) { return replicate(fabric, group, t, 0); };
  const std::vector<Tensor> latents = everywhere(in.latents);
  const std::vector<Tensor> timesteps = everywhere(in.timesteps);
  const std::vector<Tensor> captions = everywhere(in.captions);
  const std::vector<Tensor> lengths = everywhere(in.caption_lengths);
  std::vector<std::unique_ptr<SpatioTemporalStages>> owned;
  std::vector<SpatioTemporalStages*> stages;
  for (std::size_t i = 0; i < members.size(); ++i) {
    DenoiseInputs mine = in;
    mine.latents = latents[i];
    mine.timesteps = timesteps[i];
    mine.captions = captions[i];
    mine.caption_lengths = lengths[i];
    owned.push_back(members[i]->prepare_stages(mine));
    stages.push_back(owned.back().get());
  }
  FramePositionParallel scheme;
  const Tensor prediction = scheme.forward(fabric, group, stages);
  state.advance(leader, prediction);
}

}  // namespace ditserve::runtime
