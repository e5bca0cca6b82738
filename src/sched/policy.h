#pragma once
// A scheduling policy is one small program against this interface (GF-DiT's point): at
// each decision point it reads the state and returns actions for requests that are at a
// step boundary (kReady) or waiting to decode (kAwaitDecode). Requests it leaves alone
// stay where they are; a request at a boundary that gets no step loses its devices.
// Each policy lives in its own file; docs/SCHEDULING.md states each one's rule.

#include <memory>
#include <string>

#include "sched/action.h"
#include "sched/state.h"

namespace ditserve::sched {

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string name() const = 0;
  // Throws InvalidInput when the policy cannot run on this profile and cluster
  // (e.g. static:16 on 8 devices).
  virtual void check(const Profile& profile, int devices) const {}
  virtual Decision decide(const SchedState& state) = 0;
  // Why `request` (kReady or kAwaitDecode) can never run under this policy on the devices
  // in service now, e.g. "policy static:4 needs 4 devices, 3 in service"; empty while it
  // still can. The scheduler rejects it with this reason once devices are out of service
  // (docs/SCHEDULING.md, "Devices lost for good"). The default: fewer devices in service
  // than the shape's smallest profiled DoP (step, or VAE for a decode).
  virtual std::string unservable(const SchedState& state, int request) const;
};

struct PolicyOptions {
  double min_gain = kDefaultMinGain;  // optimal-DoP doubling threshold (profile.h)
  double round_s = 0;                 // TetriServe round length; 0 = 5 steps of the smallest shape
};

// "static:K", "static-best", "ddit", "tetriserve", "tetriserve:<round ms>", "elastic".
std::unique_ptr<Policy> make_policy(const std::string& spec, const PolicyOptions& options);

std::unique_ptr<Policy> make_static_policy(int dop);
std::unique_ptr<Policy> make_static_best_policy(const PolicyOptions& options);
std::unique_ptr<Policy> make_ddit_policy(const PolicyOptions& options);
std::unique_ptr<Policy> make_tetriserve_policy(const PolicyOptions& options);
std::unique_ptr<Policy> make_elastic_policy(const PolicyOptions& options);

}  // namespace ditserve::sched
