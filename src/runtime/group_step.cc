#include "runtime/group_step.h"

#include <memory>

#include "models/stdit3.h"
#include "models/wan_transformer.h"
#include "parallel/replicate.h"
#include "parallel/sequence_parallel.h"
#include "parallel/ulysses.h"
#include "tensor/error.h"

namespace ditserve::runtime {
namespace {

// Each member's own copy of the step's inputs (prepared on the first member).
std::vector<DenoiseInputs> inputs_everywhere(Fabric& fabric, const DeviceGroup& group,
                                             const DenoiseInputs& in) {
  const auto everywhere = [&](const Tensor& t) { return replicate(fabric, group, t, 0); };
  const std::vector<Tensor> latents = everywhere(in.latents);
  const std::vector<Tensor> timesteps = everywhere(in.timesteps);
  const std::vector<Tensor> captions = everywhere(in.captions);
  const std::vector<Tensor> lengths = everywhere(in.caption_lengths);
  std::vector<DenoiseInputs> out;
  for (std::size_t i = 0; i < group.ranks.size(); ++i) {
    DenoiseInputs mine = in;
    mine.latents = latents[i];
    mine.timesteps = timesteps[i];
    mine.captions = captions[i];
    mine.caption_lengths = lengths[i];
    out.push_back(std::move(mine));
  }
  return out;
}

// Every member cast to the model class M (nullptr when the first is not one).
template <typename M>
std::vector<M*> as(const std::vector<DiffusionTransformer*>& members) {
  std::vector<M*> out;
  for (std::size_t i = 0; i < members.size(); ++i) {
    M* m = dynamic_cast<M*>(members[i]);
    if (m == nullptr) {
      DITSERVE_CHECK(i == 0, "group_step: member ", i, " is another model than member 0");
      return {};
    }
    out.push_back(m);
  }
  return out;
}

Tensor frame_parallel_forward(Fabric& fabric, const DeviceGroup& group,
                              const std::vector<STDiT3*>& members,
                              const std::vector<DenoiseInputs>& inputs) {
  std::vector<std::unique_ptr<SpatioTemporalStages>> owned;
  std::vector<SpatioTemporalStages*> stages;
  for (std::size_t i = 0; i < members.size(); ++i) {
    owned.push_back(members[i]->prepare_stages(inputs[i]));
    stages.push_back(owned.back().get());
  }
  FramePositionParallel scheme;
  return scheme.forward(fabric, group, stages);
}

Tensor ulysses_forward(Fabric& fabric, const DeviceGroup& group,
                       const std::vector<WanTransformer*>& members,
                       const std::vector<DenoiseInputs>& inputs) {
  std::vector<std::unique_ptr<FullAttentionStages>> owned;
  std::vector<FullAttentionStages*> stages;
  for (std::size_t i = 0; i < members.size(); ++i) {
    owned.push_back(members[i]->prepare_stages(inputs[i]));
    stages.push_back(owned.back().get());
  }
  UlyssesParallel scheme;
  return scheme.forward(fabric, group, stages);
}

}  // namespace

bool has_group_step(const DiffusionTransformer& dit) {
  return dynamic_cast<const STDiT3*>(&dit) != nullptr ||
         dynamic_cast<const WanTransformer*>(&dit) != nullptr;
}

void group_step(Fabric& fabric, const DeviceGroup& group,
                const std::vector<DiffusionTransformer*>& members, GenerationState& state) {
  group.validate(fabric);
  DITSERVE_CHECK(members.size() == group.ranks.size(), "group_step: ", members.size(),
                 " models for a group of ", group.size());
  for (std::size_t i = 0; i < members.size(); ++i)
    DITSERVE_CHECK(members[i] != nullptr, "group_step: member ", i, " has no model");
  Backend& leader = fabric.device(group.ranks[0]);
  if (group.size() == 1) {
    state.step(leader, *members[0]);
    return;
  }
  const DenoiseInputs in = state.next_inputs(leader);
  Tensor prediction;
  if (const std::vector<STDiT3*> stdit = as<STDiT3>(members); !stdit.empty()) {
    prediction = frame_parallel_forward(fabric, group, stdit, inputs_everywhere(fabric, group, in));
  } else if (const std::vector<WanTransformer*> wan = as<WanTransformer>(members); !wan.empty()) {
    // The CFG batch [z, z] stays one batch: each member holds both branches' rows.
    prediction = ulysses_forward(fabric, group, wan, inputs_everywhere(fabric, group, in));
  } else {
    throw InvalidArgument("group_step: this model has no sequence-parallel step; it runs on one device");
  }
  state.advance(leader, prediction);
}

}  // namespace ditserve::runtime
