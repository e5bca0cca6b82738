#include "runtime/first_use.h"

#include <algorithm>

namespace ditserve::runtime {

int FirstUseFilter::setup_runs(Phase phase, int shape, const std::vector<int>& ranks, int runs) {
  const int dop = static_cast<int>(ranks.size());
  const int setup = phase == Phase::kStep ? step_setup_runs_ : 1;
  int with_setup = 0;
  for (int position = 0; position < dop; ++position) {
    const int rank = ranks[static_cast<std::size_t>(position)];
    int& done = runs_[{phase, shape, dop, position, rank}];
    with_setup = std::max(with_setup, std::clamp(setup - done, 0, runs));
    done += runs;
  }
  return with_setup;
}

}  // namespace ditserve::runtime
