#pragma once
// Known-answer checks of the ops on one backend: small inputs whose exact results are
// known in closed form (an identity weight, a single key, a quarter-turn rotation, ...).
// `ditserve selfcheck` runs them on every device present; they need no reference
// implementation, so they catch a broken backend on a machine with nothing to compare.

#include <string>
#include <vector>

#include "kernels/backend.h"

namespace ditserve {

struct SelfCheckResult {
  std::string name;   // e.g. "attention: one key returns its value (bf16)"
  double max_error;   // max |got - expected|
  double tolerance;
  std::string error;  // exception text if the op threw; empty otherwise
  bool passed() const { return error.empty() && max_error <= tolerance; }
};

// Runs every check in f32 and, on CUDA, also in bf16.
std::vector<SelfCheckResult> run_self_check(Backend& be);

}  // namespace ditserve
