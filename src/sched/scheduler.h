#pragma once
// The scheduler core: applies events to the state, runs text encodes FIFO (priority
// first) on the encoder devices, rejects requests the policy can no longer serve on the
// devices in service, asks the policy for a decision, checks every action against the
// state and applies it. The simulator and the runtime drive this same object.
//
// Driving protocol: feed every event that happens at time t through on_event(), then call
// schedule() once and execute the returned actions. Times must never go backwards.

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sched/action.h"
#include "sched/policy.h"
#include "sched/state.h"

namespace ditserve::sched {

struct ClusterConfig {
  int devices = 8;   // DiT/VAE devices, ids 0..devices-1
  int encoders = 1;  // text-encoder devices (DDiT deploys T5 apart), ids 0..encoders-1
};

class Scheduler {
 public:
  // Throws InvalidInput if the profile or the policy does not fit the cluster.
  Scheduler(const Profile& profile, ClusterConfig cluster, std::unique_ptr<Policy> policy);

  // Returns the request index for kArrival, -1 otherwise. A request whose spec is
  // impossible (unknown shape, no steps) is rejected at the next schedule().
  int on_event(const Event& event);
  // While devices are out of service and none of them may come back (Event::for_good),
  // first rejects the waiting requests the policy can no longer serve (Policy::unservable:
  // kReject with its reason); then starts encodes and applies the policy's decision.
  std::vector<Action> schedule();
  // Rejects every request not yet terminal (e.g. at the end of a simulation).
  std::vector<Action> reject_all(const std::string& reason);
  // Ends `request` now (its client cancelled it, or the runtime failed it): it becomes
  // kRejected with `reason`. REQUIRES: it holds no device and no encoder (phase kQueued,
  // kReady or kAwaitDecode); throws SchedulerBug otherwise.
  void cancel(int request, const std::string& reason);

  // The runtime's profile changes while it serves: shapes are added when first asked for
  // and their durations refined from observations. add_shape returns the new index. Both
  // throw InvalidInput when the shape lacks DoP 1 in step_s or decode_s, does not fit the
  // cluster or the policy, or (add_shape) its name is taken; update_shape keeps the name.
  int add_shape(ShapeProfile shape);
  void update_shape(int index, ShapeProfile shape);
  const Profile& profile() const { return profile_; }

  const SchedState& state() const { return state_; }
  double wake_at() const { return wake_at_; }
  const Policy& policy() const { return *policy_; }
  // Throws SchedulerBug unless: each busy device is in exactly its owner's group, groups
  // are disjoint, every request is in exactly one phase set, terminal requests hold nothing.
  void check_invariants() const;

 private:
  void apply(const Action& a, std::vector<Action>& out);
  void release(RequestState& r);
  void reject(int r, const std::string& reason, std::vector<Action>& out);
  void reject_unservable(std::vector<Action>& out);
  void entered_wait(int r);
  void check_shape(const ShapeProfile& shape) const;

  Profile profile_;
  ClusterConfig cluster_;
  std::unique_ptr<Policy> policy_;
  SchedState state_;
  // (-priority, request): highest priority first, then arrival order.
  std::set<std::pair<std::int64_t, int>> encode_queue_;
  std::vector<int> encoder_owner_;
  std::vector<std::pair<int, std::string>> pending_rejects_;
  // Requests to ask Policy::unservable about at the next schedule(): those that became
  // kReady or kAwaitDecode since, or all of them after the devices or the profile changed.
  std::vector<int> unchecked_;
  bool check_all_ = false;
  std::vector<bool> may_return_;  // device -> out of service, lost not for good
  double wake_at_;
};

}  // namespace ditserve::sched
