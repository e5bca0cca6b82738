#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <queue>

#include "sched/error.h"
#include "sched/scheduler.h"
#include "sim/random.h"

namespace ditserve::sim {
namespace {

using sched::Action;
using sched::ActionKind;
using sched::Event;
using sched::EventKind;

struct Pending {
  double time;
  long seq;  // ties in time: first scheduled, first delivered
  Event event;
  int epoch;  // a completion whose request's epoch moved on was aborted: dropped
  bool operator>(const Pending& o) const { return time != o.time ? time > o.time : seq > o.seq; }
};

// Duration of `steps` steps of `each` seconds with per-step noise: the sum of `steps`
// independent factors (1 + cv Z) has mean steps and deviation cv sqrt(steps).
double noisy(Rng& rng, double cv, double each, int steps) {
  const double mean = each * steps;
  if (cv <= 0) return mean;
  const double factor = 1.0 + cv * rng.normal() / std::sqrt(static_cast<double>(steps));
  return mean * std::max(0.2, factor);
}

}  // namespace

SimResult simulate(const sched::Profile& profile, const std::string& policy,
                   const std::vector<sched::RequestSpec>& workload, const SimOptions& options) {
  sched::Scheduler scheduler(profile, {options.devices, options.encoders},
                             sched::make_policy(policy, options.policy));
  for (const auto& r : workload)
    if (r.shape < 0 || r.shape >= static_cast<int>(profile.shapes.size()))
      sched::fail<sched::InvalidInput>("workload request ", r.id, ": shape index ", r.shape,
                                       " is not in the profile");
  SimResult result;
  result.policy = scheduler.policy().name();
  result.devices = options.devices;
  Rng rng(options.seed ^ 0x9e3779b97f4a7c15ULL);
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> queue;
  long seq = 0;
  auto push = [&](double time, Event e, int epoch) {
    e.time = time;
    queue.push({time, seq++, std::move(e), epoch});
  };
  for (const auto& r : workload) {
    Event e;
    e.kind = EventKind::kArrival;
    e.spec = r;
    push(r.arrival, e, 0);
  }
  for (const auto& e : options.device_events) push(e.time, e, 0);
  double tick_at = std::numeric_limits<double>::infinity();
  const auto& state = scheduler.state();

  auto execute = [&](const Action& a, double now) {
    ++result.actions;
    Event done;
    done.request = a.request;
    const int epoch = state.requests[a.request].epoch;
    const auto& shape = profile.shape(state.requests[a.request].spec.shape);
    double duration = 0;
    switch (a.kind) {
      case ActionKind::kEncode:
        done.kind = EventKind::kEncodeDone;
        duration = noisy(rng, options.noise_cv, a.expected_s, 1);
        break;
      case ActionKind::kStep: {
        done.kind = EventKind::kStepsDone;
        const int k = static_cast<int>(a.devices.size());
        duration = a.move_s + noisy(rng, options.noise_cv, shape.step(k), a.steps);
        result.dop_steps[k] += a.steps;
        result.busy_device_s += duration * k;
        break;
      }
      case ActionKind::kDecode:
        done.kind = EventKind::kDecodeDone;
        duration = a.move_s + noisy(rng, options.noise_cv, shape.decode(static_cast<int>(a.devices.size())), 1);
        result.busy_device_s += duration * a.devices.size();
        break;
      case ActionKind::kPreempt:
        ++result.preemptions;
        return;
      case ActionKind::kReject:
        return;
    }
    push(now + duration, done, epoch);
  };

  while (!queue.empty()) {
    const double now = queue.top().time;
    if (now > options.horizon_s) break;
    while (!queue.empty() && queue.top().time == now) {
      const Pending p = queue.top();
      queue.pop();
      const bool completion = p.event.kind == EventKind::kEncodeDone ||
                              p.event.kind == EventKind::kStepsDone ||
                              p.event.kind == EventKind::kDecodeDone;
      if (completion && state.requests[p.event.request].epoch != p.epoch) continue;
      if (p.event.kind == EventKind::kTick && p.time != tick_at) continue;
      ++result.events;
      scheduler.on_event(p.event);
      if (options.check_invariants) scheduler.check_invariants();
    }
    for (const Action& a : scheduler.schedule()) execute(a, now);
    if (options.check_invariants) scheduler.check_invariants();
    const double wake = scheduler.wake_at();
    if (std::isfinite(wake) && wake != tick_at) {
      tick_at = wake;
      Event tick;
      tick.kind = EventKind::kTick;
      push(wake, tick, 0);
    }
  }
  const bool horizon = !queue.empty();
  // Requests that would arrive after the horizon still arrive, to be rejected with the rest.
  for (; !queue.empty(); queue.pop())
    if (queue.top().event.kind == EventKind::kArrival) scheduler.on_event(queue.top().event);
  const std::string reason = !horizon
      ? "never scheduled: no device could run it (devices lost, or the policy left it waiting)"
      : "the simulation horizon was reached";
  scheduler.reject_all(reason);
  if (options.check_invariants) scheduler.check_invariants();

  result.requests.reserve(state.requests.size());
  for (const auto& r : state.requests) {
    RequestRecord rec;
    rec.id = r.spec.id;
    rec.shape = r.spec.shape;
    rec.steps = r.spec.steps;
    rec.arrival = r.spec.arrival;
    rec.deadline = r.spec.deadline;
    rec.finish = r.finish;
    rec.service_s = r.service_s;
    rec.completed = r.phase == sched::Phase::kDone;
    rec.reject_reason = r.reject_reason;
    if (rec.completed) result.makespan = std::max(result.makespan, r.finish);
    result.requests.push_back(std::move(rec));
  }
  if (result.requests.size() != workload.size())
    sched::fail<sched::SchedulerBug>("simulator: ", workload.size(), " requests in, ",
                                     result.requests.size(), " accounted for");
  return result;
}

}  // namespace ditserve::sim
