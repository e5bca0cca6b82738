#include <algorithm>
#include <utility>

#include "runtime/engine_impl.h"

namespace ditserve::runtime {

EngineImpl::Lease::Lease(EngineImpl& engine, std::vector<int> ranks, const std::string& job)
    : engine_(engine), ranks_(std::move(ranks)) {
  std::sort(ranks_.begin(), ranks_.end());
  for (int r : ranks_) engine_.slot(r).lock.lock();
  const double t = engine_.now();
  const std::lock_guard lock(engine_.stats_mu_);
  for (int r : ranks_) {
    engine_.slot(r).busy_since = t;
    engine_.slot(r).job = job;
  }
}

EngineImpl::Lease::~Lease() {
  const double t = engine_.now();
  {
    const std::lock_guard lock(engine_.stats_mu_);
    for (int r : ranks_) {
      Slot& s = engine_.slot(r);
      s.busy_s += t - s.busy_since;
      s.busy_since = -1;
      s.job.clear();
    }
  }
  for (auto it = ranks_.rbegin(); it != ranks_.rend(); ++it) engine_.slot(*it).lock.unlock();
}

}  // namespace ditserve::runtime
