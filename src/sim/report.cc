#include "sim/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

namespace ditserve::sim {
namespace {

LatencyStats stats_of(const std::vector<const RequestRecord*>& records) {
  LatencyStats s;
  s.requests = static_cast<int>(records.size());
  std::vector<double> lat;
  double queue = 0, service = 0;
  int met = 0;
  for (const RequestRecord* r : records) {
    if (!r->completed) {
      ++s.rejected;
      continue;
    }
    lat.push_back(r->latency());
    queue += r->latency() - r->service_s;
    service += r->service_s;
    met += r->met_slo();
  }
  s.completed = static_cast<int>(lat.size());
  if (s.requests > 0) s.slo_attainment = static_cast<double>(met) / s.requests;
  if (lat.empty()) return s;
  std::sort(lat.begin(), lat.end());
  double sum = 0;
  for (double x : lat) sum += x;
  s.mean = sum / lat.size();
  s.p50 = percentile(lat, 0.50);
  s.p90 = percentile(lat, 0.90);
  s.p99 = percentile(lat, 0.99);
  s.max = lat.back();
  s.mean_queue_s = queue / lat.size();
  s.mean_service_s = service / lat.size();
  return s;
}

nlohmann::json stats_json(const LatencyStats& s) {
  return {{"requests", s.requests}, {"completed", s.completed}, {"rejected", s.rejected},
          {"mean_s", s.mean}, {"p50_s", s.p50}, {"p90_s", s.p90}, {"p99_s", s.p99},
          {"max_s", s.max}, {"slo_attainment", s.slo_attainment},
          {"mean_queue_s", s.mean_queue_s}, {"mean_service_s", s.mean_service_s}};
}

std::string dop_text(const std::map<int, long>& dops) {
  long total = 0;
  for (const auto& [k, n] : dops) total += n;
  std::ostringstream os;
  for (const auto& [k, n] : dops) {
    if (os.tellp() > 0) os << " ";
    os << k << ":" << static_cast<int>(std::lround(100.0 * n / std::max(1L, total))) << "%";
  }
  return os.str();
}

}  // namespace

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * sorted.size()));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

Summary summarise(const SimResult& result, const sched::Profile& profile) {
  Summary s;
  s.policy = result.policy;
  s.devices = result.devices;
  std::vector<const RequestRecord*> all;
  std::map<std::string, std::vector<const RequestRecord*>> by_shape;
  for (const auto& r : result.requests) {
    all.push_back(&r);
    by_shape[profile.shape(r.shape).name].push_back(&r);
    if (!r.completed) ++s.reject_reasons[r.reject_reason];
  }
  s.all = stats_of(all);
  for (const auto& [name, recs] : by_shape) s.per_shape[name] = stats_of(recs);
  if (result.makespan > 0) {
    s.throughput = s.all.completed / result.makespan;
    s.utilisation = result.busy_device_s / (result.devices * result.makespan);
  }
  s.dop_steps = result.dop_steps;
  s.preemptions = result.preemptions;
  return s;
}

nlohmann::json to_json(const Summary& s) {
  nlohmann::json shapes = nlohmann::json::object();
  for (const auto& [name, st] : s.per_shape) shapes[name] = stats_json(st);
  nlohmann::json dops = nlohmann::json::object();
  for (const auto& [k, n] : s.dop_steps) dops[std::to_string(k)] = n;
  return {{"policy", s.policy}, {"devices", s.devices}, {"latency", stats_json(s.all)},
          {"throughput_rps", s.throughput}, {"utilisation", s.utilisation},
          {"dop_steps", dops}, {"preemptions", s.preemptions},
          {"reject_reasons", s.reject_reasons}, {"per_shape", shapes}};
}

std::string format_table(const std::vector<Summary>& rows) {
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof line, "%-14s %8s %8s %8s %8s %6s %7s %5s %8s %8s %4s  %s\n", "policy",
                "mean_s", "p50_s", "p90_s", "p99_s", "SLO", "req/s", "util", "queue_s",
                "service", "rej", "DoP (share of steps)");
  os << line;
  for (const auto& s : rows) {
    std::snprintf(line, sizeof line,
                  "%-14s %8.2f %8.2f %8.2f %8.2f %5.1f%% %7.3f %4.0f%% %8.2f %8.2f %4d  %s\n",
                  s.policy.c_str(), s.all.mean, s.all.p50, s.all.p90, s.all.p99,
                  100 * s.all.slo_attainment, s.throughput, 100 * s.utilisation, s.all.mean_queue_s,
                  s.all.mean_service_s, s.all.rejected, dop_text(s.dop_steps).c_str());
    os << line;
  }
  return os.str();
}

std::string format_shape_table(const Summary& s) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "  %-12s %6s %8s %8s %6s %8s\n", "shape", "n", "mean_s", "p99_s",
                "SLO", "queue_s");
  os << line;
  for (const auto& [name, st] : s.per_shape) {
    std::snprintf(line, sizeof line, "  %-12s %6d %8.2f %8.2f %5.1f%% %8.2f\n", name.c_str(),
                  st.requests, st.mean, st.p99, 100 * st.slo_attainment, st.mean_queue_s);
    os << line;
  }
  return os.str();
}

}  // namespace ditserve::sim
