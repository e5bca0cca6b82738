// elastic — ditserve's own policy (docs/SCHEDULING.md): DDiT's step granularity, optimal DoP
// and decoupled VAE, TetriServe's deadline awareness, and preemption at step boundaries:
// - every decision point re-deals the free devices among the requests at a step boundary;
//   their latents move, at the profile's move cost, when their group changes;
// - order: priority first (as every policy: policy_util.h; a request that just ran may
//   lose its devices to a higher one, as to any request ordered before it), then three
//   classes: (1) requests that can no longer meet their deadline even at B, oldest
//   first: they count for no SLO any more and every second they wait lengthens the tail;
//   (2) urgent requests, whose slack (deadline - now - (steps left x t(B) + decode)) is
//   below kUrgentShare of their deadline span, plus the occupation W (the longest
//   one-device step of any request running or competing) where W > kOccupiedShare x
//   span: a device such a step takes stays taken for W, so a short request must start
//   while it still has W to spare; least slack first; (3) the rest, largest projected
//   latency first (time waited + steps left x t(B) + decode): least slack against one
//   latency target shared by all requests, which is what bounds the tail (p99) — the
//   request that would finish latest relative to its arrival goes first, so a large
//   request is not queued behind small ones that can still wait, and a small one
//   overtakes once it has waited as long as the large one still needs (or becomes
//   urgent), and no request is delayed past the point where its deadline needs it;
// - pass 1: each, in that order, gets the fewest devices that meet its deadline
//   (TetriServe's fewest GPU-seconds; B for a late request); a request that ran the last
//   step and is not urgent keeps its DoP up to B (DDiT: no preemption without need), the
//   need being a request ordered before it (one that would otherwise finish later);
// - pass 2: devices left over top the same requests up towards B, in the same order;
// - pass 3, work conserving: only when every candidate has devices, the devices that no
//   running request below B could claim at its next boundary go, a profiled DoP at a
//   time, to the request whose remaining steps get the most faster per added device
//   (grow_fastest); splitting past B only happens when the step gets faster; B is the
//   cost-efficient DoP under contention, and with nothing waiting the fastest DoP costs
//   nobody anything (a grown request is shrunk back at its next boundary if work arrives);
// - the VAE decodes on one device (the lowest id of the last group) as soon as steps end.

#include <algorithm>
#include <limits>

#include "sched/policy.h"
#include "sched/policy_util.h"

namespace ditserve::sched {
namespace {

// A request is urgent when its slack at B is below this share of (deadline - arrival).
// 0.3 to 0.6 measure alike on the committed workloads (SCHEDULING.md); below 0.3 urgent
// requests start too late to keep SLO attainment.
constexpr double kUrgentShare = 0.4;

// A request whose deadline span is under 1 / kOccupiedShare times the occupation W (the
// longest step t(1) among requests running or competing) adds W to its urgency margin:
// next to Wan 14B's 36 s steps, an Open-Sora 720p (72 s span) or Wan 1.3B (159 s) request
// that waits for its 40% would find every device locked in such steps. 0.4 leaves the
// 1.3B out (SLO 82-95% on the mixed workload); applying it to every request (0) moved
// Open-Sora-only p99s by up to 7% on seed 1; at 0.2 those move within seed noise
// (docs/SCHEDULING.md). A request's own step never counts: its span is over 2 x steps x t(1).
constexpr double kOccupiedShare = 0.2;

enum class Class { kLate = 0, kUrgent = 1, kOther = 2 };

struct Candidate {
  int request = -1;
  Class cls = Class::kOther;
  double slack = 0;
  double projected = 0;  // latency if it ran at B from now: waited + steps left x t(B) + decode
  int want = 1;     // pass 1's DoP
  int optimal = 1;  // B
  std::vector<int> devices;
};

class ElasticPolicy : public Policy {
 public:
  explicit ElasticPolicy(double min_gain) : min_gain_(min_gain) {}

  std::string name() const override { return "elastic"; }

  Decision decide(const SchedState& s) override {
    Decision out;
    std::vector<int> free = s.free_devices();
    decode_decoupled(s, free, out);
    if (free.empty() || s.ready.empty()) return out;
    const int n = static_cast<int>(s.owner.size());
    // Candidates: all requests that just ran, plus the oldest waiting ones (bounded, so a
    // flood of arrivals keeps each decision O(N log N)).
    std::vector<int> ids(s.held_ready.begin(), s.held_ready.end());
    const std::size_t window = ids.size() + 2 * static_cast<std::size_t>(n);
    for (const int r : waiting_order(s, s.ready, window)) {
      if (ids.size() >= window) break;
      if (!s.held_ready.count(r)) ids.push_back(r);
    }
    double occupation = 0;  // how long a one-device step started now may hold its device
    for (const int r : ids) occupation = std::max(occupation, s.shape_of(r).step(1));
    for (const int r : s.running) occupation = std::max(occupation, s.shape_of(r).step(1));
    std::vector<Candidate> cand;
    cand.reserve(ids.size());
    for (const int r : ids) cand.push_back(assess(s, r, n, occupation));
    std::stable_sort(cand.begin(), cand.end(), [](const Candidate& a, const Candidate& b) {
      if (a.cls != b.cls) return a.cls < b.cls;
      if (a.cls == Class::kUrgent && a.slack != b.slack) return a.slack < b.slack;
      if (a.cls == Class::kOther && a.projected != b.projected) return a.projected > b.projected;
      return a.request < b.request;  // arrival order
    });
    priority_first(s, cand, [](const Candidate& c) { return c.request; });
    for (Candidate& c : cand) {  // pass 1
      if (free.empty()) break;
      const int k = largest_dop_at_most(s.shape_of(c.request), std::min<int>(c.want, free.size()));
      if (k > 0) c.devices = take_devices(free, k, s.requests[c.request].last_group);
    }
    for (Candidate& c : cand) {  // pass 2
      if (free.empty()) break;
      if (c.devices.empty()) continue;
      const int have = static_cast<int>(c.devices.size());
      const int k = largest_dop_at_most(s.shape_of(c.request), std::min<int>(c.optimal, have + free.size()));
      if (k <= have) continue;
      auto more = take_devices(free, k - have, s.requests[c.request].last_group);
      c.devices.insert(c.devices.end(), more.begin(), more.end());
    }
    const bool all_placed =
        cand.size() == s.ready.size() &&
        std::all_of(cand.begin(), cand.end(), [](const Candidate& c) { return !c.devices.empty(); });
    if (all_placed && !free.empty()) {  // pass 3
      std::vector<GrowthClaim> claims;
      claims.reserve(cand.size());
      for (Candidate& c : cand) {
        const RequestState& st = s.requests[c.request];
        claims.push_back({&s.shape_of(c.request), st.steps_left(), &c.devices, &st.last_group});
      }
      grow_fastest(claims, free, free_after_claims(s, static_cast<int>(free.size()), n));
    }
    for (Candidate& c : cand)
      if (!c.devices.empty()) out.actions.push_back(step_action(c.request, std::move(c.devices), 1));
    return out;
  }

 private:
  // Free devices that no stepping request below B could take at its next boundary.
  int free_after_claims(const SchedState& s, int free, int devices) const {
    int spare = free;
    for (const int r : s.running) {
      const RequestState& st = s.requests[r];
      if (st.phase != Phase::kStepping) continue;
      spare -= std::max(0, optimal_dop(s, st.spec.shape, devices) - static_cast<int>(st.group.size()));
    }
    return std::max(0, spare);
  }

  Candidate assess(const SchedState& s, int r, int devices, double occupation) const {
    const RequestState& st = s.requests[r];
    const ShapeProfile& shape = s.shape_of(r);
    const int left = st.steps_left();
    const double tail = shape.decode(1) + shape.move_s;
    Candidate c;
    c.request = r;
    c.optimal = optimal_dop(s, st.spec.shape, devices);
    c.slack = st.spec.deadline - s.now - (left * shape.step(c.optimal) + tail);
    c.projected = s.now - st.spec.arrival + left * shape.step(c.optimal) + tail;
    const double span = st.spec.deadline - st.spec.arrival;
    const double margin = kUrgentShare * span + (occupation > kOccupiedShare * span ? occupation : 0.0);
    c.cls = !(c.slack >= 0) ? Class::kLate : c.slack < margin ? Class::kUrgent : Class::kOther;
    c.want = c.optimal;
    if (c.cls == Class::kLate) return c;
    if (c.cls == Class::kOther && st.held && !st.last_group.empty()) {
      c.want = std::min<int>(c.optimal, static_cast<int>(st.last_group.size()));
      return c;
    }
    double best = std::numeric_limits<double>::infinity();
    for (const auto& [k, t] : shape.step_s) {
      if (k > c.optimal) break;
      if (s.now + left * t + tail <= st.spec.deadline && k * t < best) {
        best = k * t;
        c.want = k;
      }
    }
    return c;
  }

  // B per shape, computed once per cluster size and profile revision.
  int optimal_dop(const SchedState& s, int shape, int devices) const {
    if (optimal_devices_ != devices || optimal_revision_ != s.profile->revision) {
      optimal_.clear();
      for (const auto& sp : s.profile->shapes) optimal_.push_back(sp.optimal_dop(min_gain_, devices));
      optimal_devices_ = devices;
      optimal_revision_ = s.profile->revision;
    }
    return optimal_[shape];
  }

  double min_gain_;
  mutable std::vector<int> optimal_;
  mutable int optimal_devices_ = -1;
  mutable int optimal_revision_ = -1;
};

}  // namespace

std::unique_ptr<Policy> make_elastic_policy(const PolicyOptions& options) {
  return std::make_unique<ElasticPolicy>(options.min_gain);
}

}  // namespace ditserve::sched
