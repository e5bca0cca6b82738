#pragma once
// How far one tensor is from another, for the commands that report it (bench step's CUDA
// graphs against eager launches, profile's DoP k latents against DoP 1's).

#include <vector>

#include "kernels/backend.h"

namespace ditserve::cli {

// t's values as f32 on the host.
std::vector<float> host_values(Backend& be, const Tensor& t);

// ||a - b|| / ||b|| in double (||a - b|| when b is all zeros); throws when the sizes differ.
double relative_l2(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace ditserve::cli
