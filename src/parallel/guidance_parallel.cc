#include "parallel/guidance_parallel.h"

#include "comm/collectives.h"
#include "tensor/error.h"

namespace ditserve {

std::pair<DeviceGroup, DeviceGroup> guidance_halves(const DeviceGroup& group) {
  DITSERVE_CHECK(group.size() >= 2, "guidance parallelism: a group of ", group.size(),
                 " member(s) cannot run the two branches apart; it needs at least 2");
  const std::size_t first = static_cast<std::size_t>(even_split(group.size(), 2)[0]);
  const auto middle = group.ranks.begin() + static_cast<std::ptrdiff_t>(first);
  return {DeviceGroup{std::vector<int>(group.ranks.begin(), middle)},
          DeviceGroup{std::vector<int>(middle, group.ranks.end())}};
}

GuidedPrediction guidance_parallel_forward(Fabric& fabric, const DeviceGroup& group,
                                           SequenceParallelStep& scheme,
                                           const std::vector<SpatioTemporalStages*>& prompt,
                                           const std::vector<SpatioTemporalStages*>& null) {
  group.validate(fabric);
  const auto [prompt_group, null_group] = guidance_halves(group);
  GuidedPrediction out;
  out.cond = scheme.forward(fabric, prompt_group, prompt);
  const Tensor uncond = scheme.forward(fabric, null_group, null);
  const int root = group.ranks[0];
  out.uncond = fabric.device(root).empty(uncond.shape(), uncond.dtype());
  fabric.copy(null_group.ranks[0], uncond, root, out.uncond);
  return out;
}

}  // namespace ditserve
