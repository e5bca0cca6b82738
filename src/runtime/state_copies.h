#pragma once
// Copies of a request's state between a device and the host: the host copy is the
// checkpoint a step on another group, or a retry after a lost device, starts from.

#include "kernels/backend.h"
#include "pipeline/rectified_flow.h"

namespace ditserve::runtime {

// REQUIRES: `state` lives on `from`.
GenerationState host_copy(const GenerationState& state, Backend& from);
// REQUIRES: `host_state` lives on the host (a host_copy).
GenerationState device_copy(const GenerationState& host_state, Backend& to);

}  // namespace ditserve::runtime
