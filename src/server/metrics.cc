#include "server/metrics.h"

#include <sstream>

namespace ditserve::server {

void Metrics::Histogram::observe(double v) {
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (v <= kBuckets[i]) {
      ++counts[i];
      break;
    }
  }
  ++count;
  sum += v;
}

void Metrics::observe_finished(const runtime::JobProgress& p, double total_s,
                               std::optional<double> deadline_s) {
  const std::lock_guard lock(mutex_);
  if (p.phase == runtime::JobPhase::kCompleted) {
    phases_["queue"].observe(p.queued_s);
    phases_["encode"].observe(p.encode_s);
    phases_["denoise"].observe(p.denoise_s);
    phases_["decode"].observe(p.decode_s);
    phases_["total"].observe(total_s);
  }
  if (deadline_s && p.phase != runtime::JobPhase::kCancelled) {
    if (p.phase == runtime::JobPhase::kCompleted && total_s <= *deadline_s) ++slo_met_;
    else ++slo_missed_;
  }
}

void Metrics::count_rejected(const std::string& reason) {
  const std::lock_guard lock(mutex_);
  ++rejected_[reason];
}

std::string Metrics::render(const MetricsSnapshot& now) const {
  std::ostringstream o;
  o << "# HELP ditserve_queue_length Jobs accepted and not started.\n"
       "# TYPE ditserve_queue_length gauge\n"
    << "ditserve_queue_length " << now.engine.queued << "\n";
  o << "# HELP ditserve_running_jobs Jobs encoding, denoising or decoding.\n"
       "# TYPE ditserve_running_jobs gauge\n"
    << "ditserve_running_jobs " << now.engine.running << "\n";
  o << "# HELP ditserve_requests Jobs by API status.\n# TYPE ditserve_requests gauge\n";
  for (const char* state : {"queued", "in_progress", "completed", "failed"}) {
    const auto it = now.requests_by_state.find(state);
    o << "ditserve_requests{state=\"" << state << "\"} "
      << (it == now.requests_by_state.end() ? 0 : it->second) << "\n";
  }
  o << "# HELP ditserve_device_busy_fraction Fraction of time each device was busy since start.\n"
       "# TYPE ditserve_device_busy_fraction gauge\n";
  for (const runtime::DeviceStats& d : now.engine.devices)
    o << "ditserve_device_busy_fraction{device=\"" << d.device << "\"} " << d.busy_fraction << "\n";
  o << "# HELP ditserve_running_jobs_by_dop Running jobs by the degree of parallelism of their group.\n"
       "# TYPE ditserve_running_jobs_by_dop gauge\n";
  for (const auto& [dop, count] : now.running_by_dop)
    o << "ditserve_running_jobs_by_dop{dop=\"" << dop << "\"} " << count << "\n";

  const std::lock_guard lock(mutex_);
  o << "# HELP ditserve_requests_rejected_total Requests refused by admission control.\n"
       "# TYPE ditserve_requests_rejected_total counter\n";
  for (const char* reason : {"queue_full", "deadline"}) {
    const auto it = rejected_.find(reason);
    o << "ditserve_requests_rejected_total{reason=\"" << reason << "\"} "
      << (it == rejected_.end() ? 0 : it->second) << "\n";
  }
  o << "# HELP ditserve_phase_seconds Duration of each phase of completed jobs.\n"
       "# TYPE ditserve_phase_seconds histogram\n";
  for (const char* phase : {"queue", "encode", "denoise", "decode", "total"}) {
    const auto it = phases_.find(phase);
    const Histogram h = it == phases_.end() ? Histogram{} : it->second;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      cumulative += h.counts[i];
      o << "ditserve_phase_seconds_bucket{phase=\"" << phase << "\",le=\"" << kBuckets[i] << "\"} "
        << cumulative << "\n";
    }
    o << "ditserve_phase_seconds_bucket{phase=\"" << phase << "\",le=\"+Inf\"} " << h.count << "\n"
      << "ditserve_phase_seconds_sum{phase=\"" << phase << "\"} " << h.sum << "\n"
      << "ditserve_phase_seconds_count{phase=\"" << phase << "\"} " << h.count << "\n";
  }
  o << "# HELP ditserve_slo_total Finished jobs with a deadline, by whether they met it.\n"
       "# TYPE ditserve_slo_total counter\n"
    << "ditserve_slo_total{result=\"met\"} " << slo_met_ << "\n"
    << "ditserve_slo_total{result=\"missed\"} " << slo_missed_ << "\n";
  const std::uint64_t judged = slo_met_ + slo_missed_;
  o << "# HELP ditserve_slo_attainment Fraction of jobs with a deadline that met it.\n"
       "# TYPE ditserve_slo_attainment gauge\n"
    << "ditserve_slo_attainment "
    << (judged == 0 ? 1.0 : static_cast<double>(slo_met_) / static_cast<double>(judged)) << "\n";
  return o.str();
}

}  // namespace ditserve::server
