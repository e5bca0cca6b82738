#pragma once
// The cluster and request state one decision point sees. The Scheduler owns and mutates
// it; a Policy gets it by const reference.

#include <set>
#include <vector>

#include "sched/profile.h"
#include "sched/request.h"

namespace ditserve::sched {

struct SchedState {
  double now = 0;
  const Profile* profile = nullptr;
  std::vector<RequestState> requests;  // index = arrival order; never erased
  std::vector<int> owner;              // device -> request index running on it, or -1
  std::vector<bool> alive;             // device -> in service
  std::set<int> ready;                 // requests in kReady, by arrival
  std::set<int> held_ready;            // the subset that ran a step in the last decision
  std::set<int> await_decode;          // requests in kAwaitDecode, by arrival
  std::set<int> running;               // requests in kStepping or kDecoding
  // Some request has a nonzero priority: policies then order waiting requests by it
  // (policy_util.h, waiting_order); while false, arrival order is that order as it is.
  bool any_priority = false;

  bool is_free(int device) const { return alive[device] && owner[device] < 0; }
  std::vector<int> free_devices() const;  // ascending ids
  int alive_count() const;
  const ShapeProfile& shape_of(int r) const { return profile->shape(requests[r].spec.shape); }
};

}  // namespace ditserve::sched
