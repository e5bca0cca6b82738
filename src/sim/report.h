#pragma once
// What a simulation run measured, reduced to the figures docs/SCHEDULING.md defines:
// latency percentiles, SLO attainment, throughput, utilisation, queueing vs service time,
// the DoP histogram, and the same per request shape. As a terminal table and as JSON.

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "sched/profile.h"
#include "sim/simulator.h"

namespace ditserve::sim {

struct LatencyStats {
  int requests = 0;
  int completed = 0;
  int rejected = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;  // seconds, completed requests
  double slo_attainment = 0;  // completed by the deadline / all requests
  double mean_queue_s = 0;    // latency - service time, completed requests
  double mean_service_s = 0;
};

struct Summary {
  std::string policy;
  int devices = 0;
  LatencyStats all;
  std::map<std::string, LatencyStats> per_shape;
  double throughput = 0;   // completed requests per second of makespan
  double utilisation = 0;  // busy device-seconds / (devices x makespan)
  std::map<int, long> dop_steps;
  long preemptions = 0;
  std::map<std::string, int> reject_reasons;
};

Summary summarise(const SimResult& result, const sched::Profile& profile);
// Nearest-rank percentile of sorted values; q in [0, 1].
double percentile(const std::vector<double>& sorted, double q);

nlohmann::json to_json(const Summary& s);
// One row per summary: policy, mean, p50, p90, p99, SLO, throughput, util, queue, DoPs.
std::string format_table(const std::vector<Summary>& rows);
std::string format_shape_table(const Summary& s);

}  // namespace ditserve::sim
