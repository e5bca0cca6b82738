#pragma once
#include <utility>
#include <vector>

#include "kernels/backend.h"

namespace ditserve {

// Nearest-neighbour upsampling of a channels-last tensor x [N, *spatial, C]:
// spatial dim i grows by factors[i] (factors.size() == number of spatial dims).
Tensor upsample_nearest(Backend& be, const Tensor& x, const std::vector<int>& factors);

// Constant zero padding: dim i gets pads[i].first elements before and .second after
// (pads.size() == x.dim()). Causal 3D convolutions pad time at the front only.
Tensor pad(Backend& be, const Tensor& x,
           const std::vector<std::pair<std::int64_t, std::int64_t>>& pads);

}  // namespace ditserve
