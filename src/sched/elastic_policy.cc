// elastic — ditserve's own policy (docs/SCHEDULING.md): DDiT's step granularity, optimal DoP
// and decoupled VAE, TetriServe's deadline awareness, and preemption at step boundaries:
// - every decision point re-deals the free devices among the requests at a step boundary;
//   a running request has no claim on its group beyond its priority (its latents move, at
//   the profile's move cost, when its group changes);
// - order: first the requests that can no longer meet their deadline even at B, oldest
//   first: they count for no SLO any more, and every second they wait lengthens the tail;
//   then the others, least slack first (slack = deadline - now - (steps left x t(B) +
//   decode)), so a request is served just as early as its deadline needs;
// - pass 1: each, in that order, gets the fewest devices that still meet its deadline
//   (TetriServe's fewest GPU-seconds; B for a late request), or the largest profiled DoP
//   that the free devices allow;
// - pass 2: devices left over top the same requests up towards B, in the same order: idle
//   devices speed up running work, never past the optimal DoP;
// - the VAE decodes on one device (the lowest id of the last group) as soon as steps end.

#include <algorithm>
#include <limits>

#include "sched/policy.h"
#include "sched/policy_util.h"

namespace ditserve::sched {
namespace {

struct Candidate {
  int request = -1;
  bool late = false;
  double slack = 0;
  int want = 1;     // the DoP that meets the deadline at the fewest GPU-seconds (late: B)
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
    for (const int r : s.ready) {
      if (ids.size() >= window) break;
      if (!s.held_ready.count(r)) ids.push_back(r);
    }
    std::vector<Candidate> cand;
    cand.reserve(ids.size());
    for (const int r : ids) cand.push_back(assess(s, r, n));
    std::stable_sort(cand.begin(), cand.end(), [](const Candidate& a, const Candidate& b) {
      if (a.late != b.late) return a.late;
      if (a.late) return a.request < b.request;  // arrival order
      return a.slack < b.slack;
    });
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
    for (Candidate& c : cand)
      if (!c.devices.empty()) out.actions.push_back(step_action(c.request, std::move(c.devices), 1));
    return out;
  }

 private:
  Candidate assess(const SchedState& s, int r, int devices) const {
    const RequestState& st = s.requests[r];
    const ShapeProfile& shape = s.shape_of(r);
    const int left = st.steps_left();
    const double tail = shape.decode(1) + shape.move_s;
    Candidate c;
    c.request = r;
    c.optimal = optimal_dop(s, st.spec.shape, devices);
    c.slack = st.spec.deadline - s.now - (left * shape.step(c.optimal) + tail);
    c.late = !(c.slack >= 0);
    c.want = c.optimal;
    if (!c.late) {
      double best = std::numeric_limits<double>::infinity();
      for (const auto& [k, t] : shape.step_s) {
        if (k > c.optimal) break;
        if (s.now + left * t + tail <= st.spec.deadline && k * t < best) {
          best = k * t;
          c.want = k;
        }
      }
    }
    return c;
  }

  // B per shape, computed once per cluster size.
  int optimal_dop(const SchedState& s, int shape, int devices) const {
    if (optimal_devices_ != devices) {
      optimal_.clear();
      for (const auto& sp : s.profile->shapes) optimal_.push_back(sp.optimal_dop(min_gain_, devices));
      optimal_devices_ = devices;
    }
    return optimal_[shape];
  }

  double min_gain_;
  mutable std::vector<int> optimal_;
  mutable int optimal_devices_ = -1;
};

}  // namespace

std::unique_ptr<Policy> make_elastic_policy(const PolicyOptions& options) {
  return std::make_unique<ElasticPolicy>(options.min_gain);
}

}  // namespace ditserve::sched
