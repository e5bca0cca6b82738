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

#include <map>
#include <tuple>
#include <vector>

namespace ditserve::runtime {

class FirstUseFilter {
 public:
  enum class Phase { kEncode, kStep, kDecode };

  // step_setup_runs: how many runs of a step include lazy setup (1; 2 with CUDA graphs,
  // whose second run of a shape is the capture).
  explicit FirstUseFilter(int step_setup_runs = 1) : step_setup_runs_(step_setup_runs) {}

  // Records that the devices `ranks` (in member order: the leader first) ran `phase` of a
  // request of profile shape `shape` together, and returns whether any of them had not
  // run that member's work before since this filter was made (one per engine, so per
  // process): then the duration measured includes lazy setup. A step counts as first use
  // for its first step_setup_runs runs.
  bool first_use(Phase phase, int shape, const std::vector<int>& ranks) {
    return setup_runs(phase, shape, ranks, 1) == 1;
  }

  // The same for `runs` consecutive runs of the work on those devices (a kStep action's
  // steps): how many of them, from the first, include lazy setup.
  int setup_runs(Phase phase, int shape, const std::vector<int>& ranks, int runs);

 private:
  int step_setup_runs_;
  // (phase, shape, group size, position in the group, device rank) -> runs so far
  std::map<std::tuple<Phase, int, int, int, int>, int> runs_;
};

}  // namespace ditserve::runtime
