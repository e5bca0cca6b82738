#pragma once
// A discrete-event simulator: drives a sched::Scheduler (and so any policy) over a workload
// on N devices, with durations from the profile and an optional noise model. Same inputs
// and seed => same result, bit for bit.

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "sched/action.h"
#include "sched/policy.h"
#include "sched/profile.h"

namespace ditserve::sim {

struct SimOptions {
  int devices = 8;
  int encoders = 1;
  double noise_cv = 0;  // each duration x (1 + cv x N(0,1)), per step; 0 = the profile exactly
  std::uint64_t seed = 1;
  bool check_invariants = false;  // Scheduler::check_invariants() after every event
  double horizon_s = std::numeric_limits<double>::infinity();  // stop; the rest is rejected
  sched::PolicyOptions policy;
  std::vector<sched::Event> device_events;  // kDeviceLost / kDeviceAdded at given times
};

struct RequestRecord {
  sched::RequestId id = 0;
  int shape = -1;
  int steps = 0;
  double arrival = 0;
  double deadline = 0;
  double finish = 0;
  double service_s = 0;  // in actions; latency - service_s is time spent waiting
  bool completed = false;
  std::string reject_reason;
  double latency() const { return finish - arrival; }
  bool met_slo() const { return completed && finish <= deadline + 1e-9; }
};

struct SimResult {
  std::string policy;
  int devices = 0;
  double makespan = 0;             // the last completion
  double busy_device_s = 0;        // device-seconds in steps and decodes
  std::map<int, long> dop_steps;   // DoP -> denoising steps run at it
  long events = 0;
  long actions = 0;
  long preemptions = 0;
  std::vector<RequestRecord> requests;  // in arrival order
};

// Throws InvalidInput for a bad profile, policy or workload; sched::SchedulerBug if the
// policy breaks a rule (or, with check_invariants, an invariant fails).
SimResult simulate(const sched::Profile& profile, const std::string& policy,
                   const std::vector<sched::RequestSpec>& workload, const SimOptions& options);

}  // namespace ditserve::sim
