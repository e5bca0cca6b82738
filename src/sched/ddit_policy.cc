// ddit — DDiT (arXiv 2506.13497), as docs/SCHEDULING.md states it:
// - each shape has an optimal DoP B from the profile (doubling while it gains >= min_gain);
// - decisions at single-step granularity: every action is one step;
// - a request at a step boundary that was running keeps its group (DDiT never preempts);
// - a request with no devices takes B free devices, or what is free (< B: "hungry"),
//   first come first served (priority first, as every policy: policy_util.h);
// - then the hungry requests at a boundary, most starved first (priority first), are
//   topped up towards B ("DoP promotion"); starvation = steps since the last allocation
//   x (t(dop) - t(B));
// - decoupled VAE: after its last step a request decodes on one device, the lowest id of
//   its group; the rest return to the pool at once.

#include <algorithm>

#include "sched/policy.h"
#include "sched/policy_util.h"

namespace ditserve::sched {
namespace {

class DditPolicy : public Policy {
 public:
  explicit DditPolicy(double min_gain) : min_gain_(min_gain) {}

  std::string name() const override { return "ddit"; }

  Decision decide(const SchedState& s) override {
    Decision out;
    std::vector<int> free = s.free_devices();
    const int n = static_cast<int>(s.owner.size());
    decode_decoupled(s, free, out);
    // Requests at this boundary that got devices: (request, devices) to extend below.
    std::vector<std::pair<int, std::vector<int>>> placed;
    for (const int r : s.held_ready) {  // running requests continue where they are
      const auto& last = s.requests[r].last_group;
      int keep = 0;
      for (int d : last) keep += s.is_free(d);
      const int k = largest_dop_at_most(s.shape_of(r), std::min<int>(keep, free.size()));
      if (k > 0) placed.emplace_back(r, take_devices(free, k, last));
    }
    // Requests without devices, first come first served (priority first); each placed one
    // takes a device, so no more than this many can be placed.
    for (const int r : waiting_order(s, s.ready, s.held_ready.size() + free.size())) {
      if (free.empty()) break;
      if (s.held_ready.count(r)) continue;
      const ShapeProfile& shape = s.shape_of(r);
      const int b = shape.optimal_dop(min_gain_, n);
      const int k = largest_dop_at_most(shape, std::min<int>(b, free.size()));
      placed.emplace_back(r, take_devices(free, k, s.requests[r].last_group));
    }
    // DoP promotion: hungry requests, largest starvation time first, topped up towards B.
    std::vector<std::pair<double, std::size_t>> hungry;
    for (std::size_t i = 0; i < placed.size(); ++i) {
      const int r = placed[i].first;
      const ShapeProfile& shape = s.shape_of(r);
      const int b = shape.optimal_dop(min_gain_, n);
      const int k = static_cast<int>(placed[i].second.size());
      if (k >= b) continue;
      const RequestState& st = s.requests[r];
      const double starved = (st.steps_done - st.alloc_steps_done) * (shape.step(k) - shape.step(b));
      hungry.emplace_back(-starved, i);
    }
    std::stable_sort(hungry.begin(), hungry.end());
    priority_first(s, hungry, [&](const auto& h) { return placed[h.second].first; });
    for (const auto& [neg_starved, i] : hungry) {
      if (free.empty()) break;
      auto& [r, devs] = placed[i];
      const ShapeProfile& shape = s.shape_of(r);
      const int b = shape.optimal_dop(min_gain_, n);
      const int k = largest_dop_at_most(shape, std::min<int>(b, devs.size() + free.size()));
      if (k <= static_cast<int>(devs.size())) continue;
      std::vector<int> more = take_devices(free, k - static_cast<int>(devs.size()), s.requests[r].last_group);
      devs.insert(devs.end(), more.begin(), more.end());
    }
    for (auto& [r, devs] : placed) out.actions.push_back(step_action(r, std::move(devs), 1));
    return out;
  }

 private:
  double min_gain_;
};

}  // namespace

std::unique_ptr<Policy> make_ddit_policy(const PolicyOptions& options) {
  return std::make_unique<DditPolicy>(options.min_gain);
}

}  // namespace ditserve::sched
