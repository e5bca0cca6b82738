// static:K — what xDiT-style serving does: the cluster is cut into fixed groups of K
// devices; each request takes a whole free group, first come first served, and keeps it
// for its life: every step and the VAE decode (monolithic, VAE DoP = K or the largest
// profiled below it). No backfilling: the first ready request (priority, then arrival)
// waits for a group.

#include <algorithm>

#include "sched/error.h"
#include "sched/policy.h"
#include "sched/policy_util.h"

namespace ditserve::sched {
namespace {

class StaticPolicy : public Policy {
 public:
  explicit StaticPolicy(int dop) : dop_(dop) {}

  std::string name() const override { return "static:" + std::to_string(dop_); }

  void check(const Profile& profile, int devices) const override {
    if (dop_ > devices)
      fail<InvalidInput>("policy ", name(), ": DoP ", dop_, " is above the device count ", devices);
    for (const auto& s : profile.shapes)
      if (!s.step_s.count(dop_))
        fail<InvalidInput>("policy ", name(), ": profile shape '", s.name, "' has no step_ms for DoP ", dop_);
  }

  // Every step and the decode need one whole group of K devices in service.
  std::string unservable(const SchedState& s, int request) const override {
    const int alive = s.alive_count();
    if (alive < dop_) return "policy " + name() + " " + too_few_devices(dop_, alive);
    const int groups = static_cast<int>(s.owner.size()) / dop_;
    for (int g = 0; g < groups; ++g) {
      int whole = 0;
      for (int i = 0; i < dop_; ++i) whole += s.alive[g * dop_ + i];
      if (whole == dop_) return "";
    }
    return "policy " + name() + " needs a group of " + std::to_string(dop_) +
           " devices with all of them in service, none is left (" + std::to_string(alive) +
           " devices in service)";
  }

  Decision decide(const SchedState& s) override {
    Decision out;
    const int groups = static_cast<int>(s.owner.size()) / dop_;
    // A group is free when all of its devices are alive and idle.
    auto group_devices = [&](int g) {
      std::vector<int> devs(dop_);
      for (int i = 0; i < dop_; ++i) devs[i] = g * dop_ + i;
      return devs;
    };
    auto group_free = [&](int g) {
      for (int i = 0; i < dop_; ++i)
        if (!s.is_free(g * dop_ + i)) return false;
      return true;
    };
    std::vector<bool> taken(groups, false);
    // A group still decoding a request holds all K devices, even those the VAE leaves idle.
    for (const int r : s.running) taken[s.requests[r].group.front() / dop_] = true;
    for (const int r : waiting_order(s, s.await_decode)) {
      // Decode where it denoised: that group is still reserved for it, unless a device of
      // it was lost, in which case it takes the first whole free group.
      int g = s.requests[r].last_group.front() / dop_;
      if (taken[g] || !group_free(g)) {
        g = 0;
        while (g < groups && (taken[g] || !group_free(g))) ++g;
        if (g == groups) continue;
      }
      taken[g] = true;
      std::vector<int> devs = group_devices(g);
      devs.resize(s.shape_of(r).decode_dop_at_most(dop_));
      out.actions.push_back(decode_action(r, devs));
    }
    for (const int r : waiting_order(s, s.ready, groups)) {  // at most one per group
      int g = 0;
      while (g < groups && (taken[g] || !group_free(g))) ++g;
      if (g == groups) break;  // FCFS: the head waits, nobody overtakes it
      taken[g] = true;
      out.actions.push_back(step_action(r, group_devices(g), s.requests[r].steps_left()));
    }
    return out;
  }

 private:
  int dop_;
};

}  // namespace

std::unique_ptr<Policy> make_static_policy(int dop) {
  if (dop < 1) fail<InvalidInput>("policy static:", dop, ": the DoP must be >= 1");
  return std::make_unique<StaticPolicy>(dop);
}

}  // namespace ditserve::sched
