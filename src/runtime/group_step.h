#pragma once
// One denoising step of a request on the device group the scheduler picked: on one
// device GenerationState::step; on k devices the DiT call runs sequence-parallel over
// every member's prepared stages — FramePositionParallel for STDiT3 (spatio-temporal
// attention), UlyssesParallel for full-attention DiTs (Wan) — then the sampler update
// (rectified flow, UniPC with its history, or Euler) runs on the first member. On an even
// number of devices the two branches of classifier-free guidance run apart, the prompt's
// on the first half of the group and the null caption's on the second, each half
// sequence-parallel inside (or the plain forward on one device): on two GPUs a step then
// exchanges no activations at all. Either way the result equals the one-device step up
// to rounding. Members may be GraphedTransformers (PipelineOptions::cuda_graphs): a
// forward on one device (a group of one, or each half of a two-device guidance split)
// then replays its graph, while a sequence-parallel step runs the wrapped models' stages
// eagerly.

#include <vector>

#include "comm/fabric.h"
#include "models/interfaces.h"
#include "pipeline/rectified_flow.h"

namespace ditserve::runtime {

// Whether a step of `dit` may run on more than one device (its model has a
// sequence-parallel scheme here).
bool has_group_step(const DiffusionTransformer& dit);

// Whether group_step runs the guidance branches on the two halves of `group` (an even
// number of members) rather than the whole batch sequence-parallel over all of it.
bool uses_guidance_parallel(const DeviceGroup& group);

// members[i] is the DiT replica on fabric.device(group.ranks[i]), all of one model.
// REQUIRES: state lives on group.ranks[0]'s device and is not done. Throws
// InvalidArgument when the group is invalid, or has several members and the model no
// sequence-parallel step.
void group_step(Fabric& fabric, const DeviceGroup& group,
                const std::vector<DiffusionTransformer*>& members, GenerationState& state);

}  // namespace ditserve::runtime
