#pragma once
// A forward model of the cluster from one decision point, for a policy that looks ahead
// (rollout selection, docs/SCHEDULING.md): the requests known now run on, with no new
// arrivals and the profile's durations, under a dealing rule, and the outcome is scored.
// It lives in sched/ and reads only the profile and what the caller tells it (sim/ sits
// above sched/). It is coarse where a rollout, which compares who goes first, needs no
// detail: it counts devices rather than naming them (a move is charged when the DoP
// changes); a job given devices runs a chunk of steps (one, by default: a policy that
// re-deals at every boundary) and is dealt again at the chunk's end; after its last step it
// decodes on one device of its group and releases the others; a step in flight comes back
// at its expected end. Cost: O(E J log J) for J jobs and E chunk ends within the horizon.

#include <functional>
#include <vector>

#include "sched/profile.h"

namespace ditserve::sched {

// One request's remaining work as the model sees it.
struct ForecastJob {
  int request = -1;  // the caller's id (a SchedState index)
  const ShapeProfile* shape = nullptr;
  double arrival = 0;
  double deadline = 0;
  int priority = 0;     // higher first, before the rule's own order (policy_util.h)
  int steps_left = 0;   // steps not dispatched yet
  int optimal = 1;      // B: pass 2 tops a job up to it
  double boundary = 0;  // when it is next at a step boundary: now, or the end of its step
  int last_dop = 0;     // devices of its last step, 0 before its first; held until `boundary`
  bool held = false;    // at `boundary` it will have run the step before (it may keep its DoP)
};

// A job's place in a dealing rule's order at model time `now` (tier, then key, then the
// job's id, all ascending) and the DoP pass 1 gives it (pass 2 tops it up to B).
struct Rank {
  int tier = 0;
  double key = 0;
  int want = 1;
};
using RankRule = std::function<Rank(const ForecastJob& job, double now)>;

struct Forecast {
  int misses = 0;             // jobs projected to finish after their deadline
  double max_latency_s = 0;   // the largest projected finish - arrival
  double mean_latency_s = 0;  // over the jobs
};
// Lexicographic: fewer misses, then a smaller largest latency, then a smaller mean
// (latencies differing by under a microsecond are equal).
bool better(const Forecast& a, const Forecast& b);

// Passes 1 and 2 of a deal, on device counts: in `order` (indices into `jobs`), each job
// gets the largest profiled DoP <= min(want[i], free), then those placed are topped up
// towards their B in the same order. Returns (job, devices) in order; `free` is reduced.
struct Grant {
  int job;
  int devices;
};
std::vector<Grant> deal_counts(const std::vector<ForecastJob>& jobs, const std::vector<int>& order,
                               const std::vector<int>& want, int& free);

struct LookaheadOptions {
  // A job given devices runs as many steps as fit in this (at least one) before it is
  // dealt again; 0 = one step, as a policy that re-deals at every boundary.
  double quantum_s = 0;
  // How far the model runs; what is left then is projected at B from where it stands.
  double horizon_s = 1e300;
};

class Lookahead {
 public:
  // `free_devices` are free at `now` (after the decodes the caller has just started).
  Lookahead(double now, int free_devices, LookaheadOptions options = {})
      : now_(now), free_(free_devices), options_(options) {}
  // REQUIRES: job.boundary >= now; a job stepping now (boundary > now) holds last_dop devices.
  void add_job(const ForecastJob& job) { jobs_.push_back(job); }
  // `devices` busy until `at` outside any job (a decode in flight).
  void add_release(double at, int devices) { releases_.push_back({at, devices}); }
  const std::vector<ForecastJob>& jobs() const { return jobs_; }

  // Runs the model: first[i] devices to jobs()[i] now (0: it waits; nonzero only for a job
  // at its boundary now), then `rule` deals the free devices at every later release.
  Forecast run(const std::vector<int>& first, const RankRule& rule) const;

 private:
  struct Release {
    double at;
    int devices;
  };
  double now_;
  int free_;
  LookaheadOptions options_;
  std::vector<ForecastJob> jobs_;
  std::vector<Release> releases_;
};

}  // namespace ditserve::sched
