#pragma once
// Rotary position embedding in the interleaved-pair convention (rotary-embedding-torch,
// Wan's complex form): pair (x[2i], x[2i+1]) at position s rotates by angles[s, i].

#include <array>

#include "kernels/backend.h"

namespace ditserve {

// x [B, S, H, D] (unit stride on D, D even); angles f32 [S, D/2] on x's device.
Tensor apply_rope(Backend& be, const Tensor& x, const Tensor& angles);

// Host f32 [positions, dim/2]: angle = s * theta^(-2i/dim).
Tensor rope_angles_1d(std::int64_t positions, std::int64_t dim, double theta);

// Host f32 [T*H*W, (dims[0]+dims[1]+dims[2])/2] for a (t, h, w) grid in row-major token
// order: the first dims[0]/2 pairs rotate with t, the next dims[1]/2 with h, the rest
// with w, each section with its own frequencies theta^(-2i/dims[k]).
Tensor rope_angles_3d(std::array<std::int64_t, 3> grid, std::array<std::int64_t, 3> dims,
                      double theta);

}  // namespace ditserve
