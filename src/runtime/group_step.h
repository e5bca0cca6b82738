#pragma once
// One denoising step of a request on the device group the scheduler picked: on one
// device GenerationState::step; on k devices the DiT call runs sequence-parallel
// (FramePositionParallel over every member's prepared STDiT3 stages), then the sampler
// update runs on the first member. Either way the result equals the one-device step up
// to rounding.

#include <vector>

#include "comm/fabric.h"
#include "models/stdit3.h"
#include "pipeline/rectified_flow.h"

namespace ditserve::runtime {

// members[i] is the DiT replica on fabric.device(group.ranks[i]).
// REQUIRES: state lives on group.ranks[0]'s device and is not done.
void group_step(Fabric& fabric, const DeviceGroup& group, const std::vector<STDiT3*>& members,
                GenerationState& state);

}  // namespace ditserve::runtime
