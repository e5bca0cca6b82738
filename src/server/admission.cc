#include "server/admission.h"

#include <algorithm>
#include <cmath>

namespace ditserve::server {

void Admission::check(std::size_t queued) const {
  if (queued < max_queue_) return;
  ApiError e(429, "rate_limit_error",
             "the queue is full (" + std::to_string(max_queue_) + " jobs waiting); retry later", "",
             "queue_full");
  e.retry_after_s = retry_after_s();
  throw e;
}

void Admission::observe_service_s(double seconds) {
  const std::lock_guard lock(mutex_);
  constexpr double kWeight = 0.2;  // recent jobs count most: the load changes
  mean_service_s_ = mean_service_s_ == 0 ? seconds : (1 - kWeight) * mean_service_s_ + kWeight * seconds;
}

int Admission::retry_after_s() const {
  const std::lock_guard lock(mutex_);
  return static_cast<int>(std::clamp(std::ceil(mean_service_s_), 1.0, 600.0));
}

}  // namespace ditserve::server
