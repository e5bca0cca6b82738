#pragma once
// Placing a step's inputs on every member of a group before each member prepares its
// SpatioTemporalStages.

#include <vector>

#include "comm/fabric.h"

namespace ditserve {

// One copy of `src` (living on group member `from`) per member, in member order; member
// `from` gets `src` itself, the others a contiguous copy on their device.
// Throws InvalidArgument when the group is invalid, `from` is not a member index or src
// does not live on that member's device.
std::vector<Tensor> replicate(Fabric& fabric, const DeviceGroup& group, const Tensor& src,
                              int from);

}  // namespace ditserve
