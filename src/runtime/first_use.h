#pragma once
// Which observed durations are a device's first run of some work, to be kept out of the
// profile estimator. A backend builds what a kernel needs lazily, on its first use of a
// problem size (cuBLASLt times up to 8 algorithms per GEMM problem, cuDNN builds its
// plans, the caching allocator grows), so the first run of a given piece of work on a
// device is several times slower than every later one (measured on CPU devices: 10.5 ms
// against 2.3 ms). Fed to the estimator, that figure would stay: only the DoP that runs
// is measured again, so one inflated DoP can lose a policy's choice for good.
//
// The work a device does is keyed where its lazy setup is keyed: the request's shape
// (which names the model), the group size, and the device's position in the group (a
// group cuts the latent into uneven bands by member order, so each position runs GEMMs of
// its own sizes), per device (each backend has its own plan cache and allocator). Not
// thread-safe (the engine's control thread owns it).

#include <set>
#include <tuple>
#include <vector>

namespace ditserve::runtime {

class FirstUseFilter {
 public:
  enum class Phase { kEncode, kStep, kDecode };

  // Records that the devices `ranks` (in member order: the leader first) ran `phase` of a
  // request of profile shape `shape` together, and returns whether any of them had not
  // run that member's work before since this filter was made (one per engine, so per
  // process): then the duration measured includes lazy setup.
  bool first_use(Phase phase, int shape, const std::vector<int>& ranks);

 private:
  // (phase, shape, group size, position in the group, device rank)
  std::set<std::tuple<Phase, int, int, int, int>> done_;
};

}  // namespace ditserve::runtime
