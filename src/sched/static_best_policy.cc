// static-best — the strongest fixed-DoP baseline (TetriServe's RSSP, DDiT's "DoP fixed per
// request"): each shape runs at its optimal DoP B from the profile (profile.h), fixed for
// the request's life; ready requests are served in priority, then arrival order, first
// fit (one whose B devices are not free is passed over: strict FCFS blocks far worse, see
// SCHEDULING.md); the VAE decodes on the same group (VAE DoP = B or the largest profiled
// below it).

#include "sched/policy.h"
#include "sched/policy_util.h"

namespace ditserve::sched {
namespace {

class StaticBestPolicy : public Policy {
 public:
  explicit StaticBestPolicy(double min_gain) : min_gain_(min_gain) {}

  std::string name() const override { return "static-best"; }

  // A step needs B devices, a decode the VAE DoP of its last group (as decide() asks).
  std::string unservable(const SchedState& s, int request) const override {
    const RequestState& r = s.requests[request];
    const ShapeProfile& shape = s.shape_of(request);
    const int need = r.phase == Phase::kAwaitDecode
                         ? shape.decode_dop_at_most(static_cast<int>(r.last_group.size()))
                         : shape.optimal_dop(min_gain_, static_cast<int>(s.owner.size()));
    const int have = s.alive_count();
    return have < need ? "policy " + name() + " " + too_few_devices(need, have) : "";
  }

  Decision decide(const SchedState& s) override {
    Decision out;
    std::vector<int> free = s.free_devices();
    const int n = static_cast<int>(s.owner.size());
    for (const int r : waiting_order(s, s.await_decode)) {
      const auto& last = s.requests[r].last_group;
      const int vae = s.shape_of(r).decode_dop_at_most(static_cast<int>(last.size()));
      if (static_cast<int>(free.size()) < vae) break;
      out.actions.push_back(decode_action(r, take_devices(free, vae, last)));
    }
    for (const int r : waiting_order(s, s.ready)) {
      const int b = s.shape_of(r).optimal_dop(min_gain_, n);
      if (static_cast<int>(free.size()) < b) continue;  // first fit: later ones may pass
      out.actions.push_back(step_action(r, take_devices(free, b, {}), s.requests[r].steps_left()));
    }
    return out;
  }

 private:
  double min_gain_;
};

}  // namespace

std::unique_ptr<Policy> make_static_best_policy(const PolicyOptions& options) {
  return std::make_unique<StaticBestPolicy>(options.min_gain);
}

}  // namespace ditserve::sched
