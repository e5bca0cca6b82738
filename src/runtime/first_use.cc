#include "runtime/first_use.h"

namespace ditserve::runtime {

bool FirstUseFilter::first_use(Phase phase, int shape, const std::vector<int>& ranks) {
  const int dop = static_cast<int>(ranks.size());
  bool first = false;
  for (int position = 0; position < dop; ++position) {
    const int rank = ranks[static_cast<std::size_t>(position)];
    if (done_.emplace(phase, shape, dop, position, rank).second) first = true;
  }
  return first;
}

}  // namespace ditserve::runtime
