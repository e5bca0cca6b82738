#pragma once
// Classifier-free guidance parallelism: the prompt's branch and the null caption's branch
// of one denoising step run at once on the two halves of a group, each half sharded by a
// SequenceParallelStep, instead of one after the other (or as one batch) on all of it.
// On CUDA the halves' work is queued on disjoint devices, so it overlaps; CPU devices run
// it in turn.

#include <utility>
#include <vector>

#include "parallel/sequence_parallel.h"

namespace ditserve {

// The members that run each branch: the first ceil(k/2) for the prompt, the rest for the
// null caption. Throws InvalidArgument unless the group has at least 2 members.
std::pair<DeviceGroup, DeviceGroup> guidance_halves(const DeviceGroup& group);

struct GuidedPrediction {
  Tensor cond;    // the prompt branch's prediction
  Tensor uncond;  // the null caption branch's prediction
};

// prompt[i] / null[i]: stages prepared on member i of guidance_halves(group).first /
// .second, from the same latents and timesteps with the prompt's or the null captions.
// Both predictions are returned on the group's first member (the caller combines them,
// e.g. with apply_guidance).
GuidedPrediction guidance_parallel_forward(Fabric& fabric, const DeviceGroup& group,
                                           SequenceParallelStep& scheme,
                                           const std::vector<SpatioTemporalStages*>& prompt,
                                           const std::vector<SpatioTemporalStages*>& null);

}  // namespace ditserve
