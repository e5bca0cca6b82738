#pragma once
// The scheduler's vocabulary with its driver (the simulator, or the runtime): events in,
// actions out, both plain data. Device ids index the cluster's DiT devices; encoder ids
// index the separate text-encoder devices.

#include <limits>
#include <string>
#include <vector>

#include "sched/request.h"

namespace ditserve::sched {

enum class EventKind {
  kArrival,      // spec: the new request
  kEncodeDone,   // request
  kStepsDone,    // request: the steps of its last kStep action all finished
  kDecodeDone,   // request: decoded; the request is complete
  kDeviceLost,   // device: gone; the action running on it is aborted
  kDeviceAdded,  // device: (back) in service; may extend the cluster
  kTick,         // a wake-up the policy asked for
};

struct Event {
  EventKind kind = EventKind::kTick;
  double time = 0;
  int request = -1;  // scheduler index of the request (Action::request)
  int device = -1;
  // kDeviceLost: the device never comes back (a failed GPU the runtime dropped); false: it
  // may (an outage), so requests wait for it. Only while every device out of service is
  // gone for good does the scheduler reject what the policy can no longer serve.
  bool for_good = false;
  RequestSpec spec;  // kArrival only
};

enum class ActionKind {
  kEncode,   // encode `request` on encoder devices[0]
  kStep,     // run the next `steps` steps of `request` on `devices`
  kDecode,   // VAE-decode `request` on `devices`
  kPreempt,  // `request` lost its group at a step boundary; park its latents
  kReject,   // `request` ends here, for `reason`
};
const char* action_name(ActionKind k);

struct Action {
  ActionKind kind = ActionKind::kStep;
  int request = -1;
  std::vector<int> devices;
  int steps = 0;
  double move_s = 0;      // filled by the scheduler: latents change groups first
  double expected_s = 0;  // filled by the scheduler from the profile (move included)
  std::string reason;
};

// A policy's answer to one decision point.
struct Decision {
  std::vector<Action> actions;  // kStep, kDecode or kReject only
  double wake_at = std::numeric_limits<double>::infinity();  // ask for a kTick then
};

}  // namespace ditserve::sched
