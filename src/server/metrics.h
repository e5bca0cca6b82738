#pragma once
// Prometheus text exposition (format 0.0.4) of what the server and engine are doing:
//   ditserve_queue_length                 jobs accepted and not started (engine view)
//   ditserve_requests{state}              jobs by API status (queued, in_progress, completed, failed)
//   ditserve_requests_rejected_total{reason}  429 (queue_full) and 422 (deadline) answers
//   ditserve_phase_seconds{phase}         histogram: queue, encode, denoise, decode, total
//   ditserve_device_busy_fraction{device} since the engine started
//   ditserve_running_jobs_by_dop{dop}     running jobs by the DoP of their current group (the
//                                         denoising step's, or the VAE decode's while decoding)
//   ditserve_slo_total{result}            finished jobs with a deadline: met / missed
//   ditserve_slo_attainment               met / (met + missed), 1 when there are none
// Thread-safe.

#include <array>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace ditserve::server {

// What the server knows now, gathered by the caller for one scrape.
struct MetricsSnapshot {
  std::map<std::string, int> requests_by_state;  // API status -> count
  std::map<int, int> running_by_dop;
  runtime::EngineStats engine;
};

class Metrics {
 public:
  // A job reached a terminal phase after `total_s` seconds from submission; `deadline_s`
  // is its deadline when it had one.
  void observe_finished(const runtime::JobProgress& p, double total_s, std::optional<double> deadline_s);
  void count_rejected(const std::string& reason);
  std::string render(const MetricsSnapshot& now) const;

 private:
  static constexpr std::array<double, 14> kBuckets = {0.01, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                                      5,    10,   30,  60,   120, 300, 600};
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> counts{};  // per bucket, not cumulative
    std::uint64_t count = 0;
    double sum = 0;
    void observe(double v);
  };

  mutable std::mutex mutex_;
  std::map<std::string, Histogram> phases_;
  std::map<std::string, std::uint64_t> rejected_;
  std::uint64_t slo_met_ = 0;
  std::uint64_t slo_missed_ = 0;
};

}  // namespace ditserve::server
