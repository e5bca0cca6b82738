#pragma once
// Workloads: generated (Poisson or bursty gamma arrivals over a mix of shapes) or replayed
// from a JSONL trace (schema in docs/SCHEDULING.md). Every shape must be in the profile.

#include <cstdint>
#include <string>
#include <vector>

#include "sched/profile.h"
#include "sched/request.h"

namespace ditserve::sim {

struct MixEntry {
  int shape = -1;  // index into the profile
  double weight = 1;
  int steps = 0;   // denoising steps of this shape's requests; 0: the workload's steps
};

enum class Arrivals { kPoisson, kGamma };

struct WorkloadSpec {
  Arrivals arrivals = Arrivals::kPoisson;
  double rate = 0.5;       // requests per second
  double burstiness = 3;   // gamma only: coefficient of variation of the gaps (Poisson = 1)
  double duration_s = 0;   // arrivals in [0, duration_s); 0 = no limit
  int count = 0;           // at most this many requests; 0 = no limit (one limit is required)
  std::vector<MixEntry> mix;
  int steps = 30;
  double slo_scale = 2;    // deadline = arrival + slo_scale x solo latency on one device
  std::uint64_t seed = 1;
};

// "uniform" (all profile shapes alike), "skewed" (p ~ exp(L / L_max), L = h x w x frames:
// TetriServe's skew), or "name:weight,name:weight:steps,..." (steps: that shape's own step
// count, e.g. Wan's 50 beside Open-Sora's 30 in a mixed profile). Throws naming the bad
// entry.
std::vector<MixEntry> parse_mix(const std::string& text, const sched::Profile& profile);
std::vector<sched::RequestSpec> generate(const WorkloadSpec& spec, const sched::Profile& profile);

// One JSON object per line: {"id", "arrival_s", "shape", "steps", "deadline_s"?,
// "priority"?}; a missing deadline_s is slo_scale x solo latency, a missing priority 0.
// Throws naming the file, line and field.
std::vector<sched::RequestSpec> load_trace(const std::string& path, const sched::Profile& profile,
                                           double slo_scale);
void write_trace(const std::string& path, const std::vector<sched::RequestSpec>& requests,
                 const sched::Profile& profile);

}  // namespace ditserve::sim
