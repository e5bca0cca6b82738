#pragma once
// Builds a SchedState by hand, so a policy's decide() can be checked on a scenario whose
// right answer is known.

#include <vector>

#include "sched/state.h"

namespace ditserve::testing {

class StateBuilder {
 public:
  StateBuilder(sched::Profile profile, int devices) : profile_(std::move(profile)) {
    state_.profile = &profile_;
    state_.owner.assign(devices, -1);
    state_.alive.assign(devices, true);
  }
  StateBuilder(const StateBuilder&) = delete;

  // Adds a request; `group` is held (kStepping/kDecoding) and `last` is where its latents are.
  int add(int shape, int steps, double arrival, double deadline, sched::Phase phase,
          int steps_done = 0, std::vector<int> group = {}, std::vector<int> last = {},
          bool held = false) {
    const int idx = static_cast<int>(state_.requests.size());
    sched::RequestState r;
    r.spec = {idx, shape, steps, arrival, deadline};
    r.phase = phase;
    r.steps_done = steps_done;
    r.group = group;
    r.last_group = last;
    r.held = held;
    r.dop = static_cast<int>(!group.empty() ? group.size() : last.size());
    for (int d : group) state_.owner[d] = idx;
    state_.requests.push_back(r);
    if (phase == sched::Phase::kReady) state_.ready.insert(idx);
    if (phase == sched::Phase::kReady && held) state_.held_ready.insert(idx);
    if (phase == sched::Phase::kAwaitDecode) state_.await_decode.insert(idx);
    if (phase == sched::Phase::kStepping || phase == sched::Phase::kDecoding) state_.running.insert(idx);
    return idx;
  }
  void prioritise(int request, int priority) {
    state_.requests[request].spec.priority = priority;
    if (priority != 0) state_.any_priority = true;
  }
  void at(double now) { state_.now = now; }
  const sched::SchedState& state() const { return state_; }
  sched::SchedState& mutable_state() { return state_; }

 private:
  sched::Profile profile_;
  sched::SchedState state_;
};

}  // namespace ditserve::testing
