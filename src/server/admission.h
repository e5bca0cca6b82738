#pragma once
// Admission control: a bounded queue of accepted-but-not-started jobs. When it is full a
// request gets 429 with Retry-After: the mean service time (encode + denoise + decode) of
// recent jobs, an estimate of when a queued job will start and free a place, at least 1 s.
// Thread-safe.

#include <cstddef>
#include <mutex>

#include "server/api_error.h"

namespace ditserve::server {

class Admission {
 public:
  explicit Admission(std::size_t max_queue) : max_queue_(max_queue) {}

  // Throws a 429 ApiError (rate_limit_error, code "queue_full", retry_after_s set) when
  // `queued` jobs already fill the queue.
  void check(std::size_t queued) const;
  // A job's encode + denoise + decode seconds, for the Retry-After estimate.
  void observe_service_s(double seconds);
  int retry_after_s() const;
  std::size_t max_queue() const { return max_queue_; }

 private:
  std::size_t max_queue_;
  mutable std::mutex mutex_;
  double mean_service_s_ = 0;  // exponential moving average; 0 until the first job
};

}  // namespace ditserve::server
