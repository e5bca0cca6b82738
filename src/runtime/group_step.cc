#include "runtime/group_step.h"

#include <future>
#include <memory>
#include <utility>

#include "kernels/copy.h"
#include "models/graphed_transformer.h"
#include "models/stdit3.h"
#include "models/wan_transformer.h"
#include "parallel/guidance_parallel.h"
#include "parallel/sequence_parallel.h"
#include "parallel/ulysses.h"
#include "tensor/error.h"

namespace ditserve::runtime {
namespace {

// Every member cast to the model class M (nullptr when the first is not one), looking
// through a GraphedTransformer: a sequence-parallel step runs the model's stages eagerly.
template <typename M>
std::vector<M*> as(const std::vector<DiffusionTransformer*>& members) {
  std::vector<M*> out;
  for (std::size_t i = 0; i < members.size(); ++i) {
    M* m = dynamic_cast<M*>(&unwrap_graphed(*members[i]));
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

// The prediction of `members` (one DiT replica per member of `group`) for the member-local
// inputs: the plain forward on one device, else the model's sequence-parallel scheme.
Tensor group_forward(Fabric& fabric, const DeviceGroup& group,
                     const std::vector<DiffusionTransformer*>& members,
                     const std::vector<DenoiseInputs>& inputs) {
  if (group.size() == 1) return members[0]->forward(inputs[0]);
  if (const std::vector<STDiT3*> stdit = as<STDiT3>(members); !stdit.empty())
    return frame_parallel_forward(fabric, group, stdit, inputs);
  if (const std::vector<WanTransformer*> wan = as<WanTransformer>(members); !wan.empty())
    return ulysses_forward(fabric, group, wan, inputs);
  throw InvalidArgument("group_step: this model has no sequence-parallel step; it runs on one device");
}

// Row `row` of the guidance batch [z, z] (0: the prompt's branch, 1: the null caption's).
DenoiseInputs branch(const DenoiseInputs& in, std::int64_t row) {
  DenoiseInputs out = in;
  out.latents = in.latents.narrow(0, row, 1);
  out.timesteps = in.timesteps.narrow(0, row, 1);
  out.captions = in.captions.narrow(0, row, 1);
  out.caption_lengths = in.caption_lengths.narrow(0, row, 1);
  return out;
}

// Classifier-free guidance parallelism: the prompt's branch on the first half of the group,
// the null caption's on the second (guidance_halves), at once and with no exchange between
// the halves until both predictions are made. The null branch is issued from its own thread,
// so neither half's device waits for the other half's kernel launches. Returns the batch
// [cond, uncond] on the group's first member, as the one-device forward returns it.
Tensor guidance_parallel_forward(Fabric& fabric, const DeviceGroup& group,
                                 const std::vector<DiffusionTransformer*>& members,
                                 const std::vector<DenoiseInputs>& inputs) {
  const std::pair<DeviceGroup, DeviceGroup> halves = guidance_halves(group);
  const DeviceGroup& prompt_half = halves.first;
  const DeviceGroup& null_half = halves.second;
  const auto rows = [&](std::size_t first, std::size_t count, std::int64_t row) {
    std::pair<std::vector<DiffusionTransformer*>, std::vector<DenoiseInputs>> out;
    for (std::size_t i = first; i < first + count; ++i) {
      out.first.push_back(members[i]);
      out.second.push_back(branch(inputs[i], row));
    }
    return out;
  };
  const auto prompt = rows(0, prompt_half.ranks.size(), 0);
  const auto null = rows(prompt_half.ranks.size(), null_half.ranks.size(), 1);
  std::future<Tensor> uncond = std::async(std::launch::async, [&] {
    return group_forward(fabric, null_half, null.first, null.second);
  });
  Tensor cond;
  try {
    cond = group_forward(fabric, prompt_half, prompt.first, prompt.second);
  } catch (...) {
    uncond.wait();  // the other half's work refers to this frame's locals
    throw;
  }
  const Tensor far = uncond.get();
  Backend& leader = fabric.device(group.ranks[0]);
  Tensor near = leader.empty(far.shape(), far.dtype());
  fabric.copy(null_half.ranks[0], far, group.ranks[0], near);
  return concat(leader, {cond, near}, 0);
}

}  // namespace

bool uses_guidance_parallel(const DeviceGroup& group) {
  return group.size() >= 2 && group.size() % 2 == 0;
}

bool has_group_step(const DiffusionTransformer& dit) {
  const DiffusionTransformer& model = unwrap_graphed(dit);
  return dynamic_cast<const STDiT3*>(&model) != nullptr ||
         dynamic_cast<const WanTransformer*>(&model) != nullptr;
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
  if (as<STDiT3>(members).empty() && as<WanTransformer>(members).empty())
    throw InvalidArgument("group_step: this model has no sequence-parallel step; it runs on one device");
  const std::vector<DenoiseInputs> everywhere = replicate_inputs(fabric, group, in);
  const Tensor prediction = uses_guidance_parallel(group)
                                ? guidance_parallel_forward(fabric, group, members, everywhere)
                                : group_forward(fabric, group, members, everywhere);
  state.advance(leader, prediction);
}

}  // namespace ditserve::runtime
