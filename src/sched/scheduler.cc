#include "sched/scheduler.h"

#include <algorithm>
#include <limits>

#include "sched/error.h"

namespace ditserve::sched {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

bool is_subset(const std::vector<int>& small, const std::vector<int>& big) {
  return std::includes(big.begin(), big.end(), small.begin(), small.end());
}

}  // namespace

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::kQueued: return "queued";
    case Phase::kEncoding: return "encoding";
    case Phase::kReady: return "ready";
    case Phase::kStepping: return "stepping";
    case Phase::kAwaitDecode: return "await-decode";
    case Phase::kDecoding: return "decoding";
    case Phase::kDone: return "done";
    case Phase::kRejected: return "rejected";
  }
  return "?";
}

const char* action_name(ActionKind k) {
  switch (k) {
    case ActionKind::kEncode: return "encode";
    case ActionKind::kStep: return "step";
    case ActionKind::kDecode: return "decode";
    case ActionKind::kPreempt: return "preempt";
    case ActionKind::kReject: return "reject";
  }
  return "?";
}

std::vector<int> SchedState::free_devices() const {
  std::vector<int> out;
  for (std::size_t d = 0; d < owner.size(); ++d)
    if (alive[d] && owner[d] < 0) out.push_back(static_cast<int>(d));
  return out;
}

int SchedState::alive_count() const {
  return static_cast<int>(std::count(alive.begin(), alive.end(), true));
}

Scheduler::Scheduler(const Profile& profile, ClusterConfig cluster, std::unique_ptr<Policy> policy)
    : profile_(profile), cluster_(cluster), policy_(std::move(policy)), wake_at_(kInf) {
  if (cluster_.devices < 1) fail<InvalidInput>("cluster: devices must be >= 1, got ", cluster_.devices);
  if (cluster_.encoders < 1) fail<InvalidInput>("cluster: encoders must be >= 1, got ", cluster_.encoders);
  if (!policy_) fail<InvalidInput>("scheduler: no policy");
  profile_.check_fits(cluster_.devices);
  policy_->check(profile_, cluster_.devices);
  state_.profile = &profile_;
  state_.owner.assign(cluster_.devices, -1);
  state_.alive.assign(cluster_.devices, true);
  may_return_.assign(cluster_.devices, false);
  encoder_owner_.assign(cluster_.encoders, -1);
}

void Scheduler::release(RequestState& r) {
  for (int d : r.group) state_.owner[d] = -1;
  r.group.clear();
}

int Scheduler::on_event(const Event& e) {
  if (e.time < state_.now)
    fail<SchedulerBug>("event at t=", e.time, " after t=", state_.now, ": time went backwards");
  state_.now = e.time;
  auto checked = [&](Phase want) -> RequestState& {
    if (e.request < 0 || e.request >= static_cast<int>(state_.requests.size()))
      fail<SchedulerBug>("event names unknown request ", e.request);
    RequestState& r = state_.requests[e.request];
    if (r.phase != want)
      fail<SchedulerBug>("event for request ", r.spec.id, " in phase ", phase_name(r.phase),
                         ", expected ", phase_name(want));
    return r;
  };
  switch (e.kind) {
    case EventKind::kArrival: {
      const int idx = static_cast<int>(state_.requests.size());
      RequestState r;
      r.spec = e.spec;
      r.spec.arrival = e.time;
      state_.requests.push_back(r);
      if (e.spec.priority != 0) state_.any_priority = true;
      if (e.spec.shape < 0 || e.spec.shape >= static_cast<int>(profile_.shapes.size()))
        pending_rejects_.emplace_back(idx, "shape not in the profile");
      else if (e.spec.steps < 1)
        pending_rejects_.emplace_back(idx, "steps must be >= 1");
      else
        encode_queue_.emplace(-std::int64_t{e.spec.priority}, idx);
      return idx;
    }
    case EventKind::kEncodeDone: {
      RequestState& r = checked(Phase::kEncoding);
      for (int& owner : encoder_owner_)
        if (owner == e.request) owner = -1;
      r.phase = Phase::kReady;
      r.encode_done = e.time;
      state_.ready.insert(e.request);
      entered_wait(e.request);
      break;
    }
    case EventKind::kStepsDone: {
      RequestState& r = checked(Phase::kStepping);
      r.pending_steps = 0;
      r.last_group = r.group;
      release(r);
      state_.running.erase(e.request);
      if (r.steps_done >= r.spec.steps) {
        r.phase = Phase::kAwaitDecode;
        r.held = false;
        state_.await_decode.insert(e.request);
      } else {
        r.phase = Phase::kReady;
        state_.ready.insert(e.request);
        if (r.held) state_.held_ready.insert(e.request);
      }
      entered_wait(e.request);
      break;
    }
    case EventKind::kDecodeDone: {
      RequestState& r = checked(Phase::kDecoding);
      release(r);
      state_.running.erase(e.request);
      r.phase = Phase::kDone;
      r.finish = e.time;
      break;
    }
    case EventKind::kDeviceLost: {
      if (e.device < 0 || e.device >= static_cast<int>(state_.alive.size()))
        fail<InvalidInput>("device lost: unknown device ", e.device);
      state_.alive[e.device] = false;
      may_return_[e.device] = !e.for_good;
      check_all_ = true;
      const int victim = state_.owner[e.device];
      if (victim >= 0) {
        RequestState& r = state_.requests[victim];
        // The in-flight action is lost; its steps are run again (docs/SCHEDULING.md).
        ++r.epoch;
        state_.running.erase(victim);
        if (r.phase == Phase::kStepping) {
          r.steps_done -= r.pending_steps;
          r.phase = Phase::kReady;
          state_.ready.insert(victim);
        } else {
          r.phase = Phase::kAwaitDecode;
          state_.await_decode.insert(victim);
        }
        r.pending_steps = 0;
        r.held = false;
        r.last_group = r.group;
        release(r);
      }
      break;
    }
    case EventKind::kDeviceAdded: {
      if (e.device < 0) fail<InvalidInput>("device added: bad id ", e.device);
      if (e.device >= static_cast<int>(state_.alive.size())) {
        state_.alive.resize(e.device + 1, false);
        state_.owner.resize(e.device + 1, -1);
        may_return_.resize(e.device + 1, false);
      }
      state_.alive[e.device] = true;
      may_return_[e.device] = false;
      check_all_ = true;
      break;
    }
    case EventKind::kTick:
      break;
  }
  return -1;
}

void Scheduler::entered_wait(int r) { unchecked_.push_back(r); }

void Scheduler::reject_unservable(std::vector<Action>& out) {
  std::vector<int> check;
  if (check_all_) {
    check.assign(state_.ready.begin(), state_.ready.end());
    check.insert(check.end(), state_.await_decode.begin(), state_.await_decode.end());
  } else {
    check.swap(unchecked_);
  }
  unchecked_.clear();
  check_all_ = false;
  // With every device in service the policy can serve every request (check() said so);
  // while a device may come back, requests wait for it.
  if (state_.alive_count() == static_cast<int>(state_.alive.size())) return;
  if (std::find(may_return_.begin(), may_return_.end(), true) != may_return_.end()) return;
  for (const int idx : check) {
    const Phase p = state_.requests[idx].phase;
    if (p != Phase::kReady && p != Phase::kAwaitDecode) continue;  // moved on since
    const std::string why = policy_->unservable(state_, idx);
    if (!why.empty()) reject(idx, why, out);
  }
}

void Scheduler::reject(int idx, const std::string& reason, std::vector<Action>& out) {
  RequestState& r = state_.requests[idx];
  state_.ready.erase(idx);
  state_.held_ready.erase(idx);
  state_.await_decode.erase(idx);
  state_.running.erase(idx);
  release(r);
  r.phase = Phase::kRejected;
  r.reject_reason = reason;
  r.finish = state_.now;
  Action a;
  a.kind = ActionKind::kReject;
  a.request = idx;
  a.reason = reason;
  out.push_back(std::move(a));
}

void Scheduler::apply(const Action& in, std::vector<Action>& out) {
  const std::string who = "policy " + policy_->name() + ": ";
  if (in.request < 0 || in.request >= static_cast<int>(state_.requests.size()))
    fail<SchedulerBug>(who, action_name(in.kind), " names unknown request ", in.request);
  RequestState& r = state_.requests[in.request];
  if (in.kind == ActionKind::kReject) {
    if (r.terminal() || r.phase == Phase::kStepping || r.phase == Phase::kDecoding ||
        r.phase == Phase::kEncoding)
      fail<SchedulerBug>(who, "cannot reject request ", r.spec.id, " in phase ", phase_name(r.phase));
    reject(in.request, in.reason.empty() ? "rejected by policy" : in.reason, out);
    return;
  }
  if (in.kind != ActionKind::kStep && in.kind != ActionKind::kDecode)
    fail<SchedulerBug>(who, "may only emit step, decode or reject actions");
  std::vector<int> group = in.devices;
  std::sort(group.begin(), group.end());
  if (group.empty()) fail<SchedulerBug>(who, action_name(in.kind), " of request ", r.spec.id, " has no devices");
  for (std::size_t i = 0; i < group.size(); ++i) {
    const int d = group[i];
    if (d < 0 || d >= static_cast<int>(state_.owner.size()) || !state_.alive[d])
      fail<SchedulerBug>(who, "request ", r.spec.id, " given dead or unknown device ", d);
    if (state_.owner[d] >= 0)
      fail<SchedulerBug>(who, "request ", r.spec.id, " given device ", d, " held by request ",
                         state_.requests[state_.owner[d]].spec.id);
    if (i > 0 && group[i - 1] == d) fail<SchedulerBug>(who, "device ", d, " listed twice");
  }
  const ShapeProfile& shape = profile_.shape(r.spec.shape);
  const int k = static_cast<int>(group.size());
  Action a = in;
  a.devices = group;
  if (in.kind == ActionKind::kStep) {
    if (r.phase != Phase::kReady)
      fail<SchedulerBug>(who, "step for request ", r.spec.id, " in phase ", phase_name(r.phase));
    if (!shape.step_s.count(k))
      fail<SchedulerBug>(who, "DoP ", k, " for shape ", shape.name, " is not in the profile");
    if (in.steps < 1 || in.steps > r.steps_left())
      fail<SchedulerBug>(who, "request ", r.spec.id, " asked for ", in.steps, " steps, has ", r.steps_left());
    a.move_s = (!r.last_group.empty() && group != r.last_group) ? shape.move_s : 0.0;
    a.expected_s = a.move_s + in.steps * shape.step(k);
    state_.ready.erase(in.request);
    state_.held_ready.erase(in.request);
    if (k > r.dop || r.steps_done == 0) r.alloc_steps_done = r.steps_done;
    r.dop = k;
    r.phase = Phase::kStepping;
    r.steps_done += in.steps;  // credited now; taken back if the action is aborted
    r.pending_steps = in.steps;
    r.held = true;
    if (r.first_step < 0) r.first_step = state_.now;
  } else {
    if (r.phase != Phase::kAwaitDecode)
      fail<SchedulerBug>(who, "decode for request ", r.spec.id, " in phase ", phase_name(r.phase));
    if (!shape.decode_s.count(k))
      fail<SchedulerBug>(who, "VAE DoP ", k, " for shape ", shape.name, " is not in the profile");
    a.move_s = is_subset(group, r.last_group) ? 0.0 : shape.move_s;
    a.expected_s = a.move_s + shape.decode(k);
    state_.await_decode.erase(in.request);
    r.phase = Phase::kDecoding;
  }
  r.service_s += a.expected_s;
  r.expected_end = state_.now + a.expected_s;
  r.group = group;
  for (int d : group) state_.owner[d] = in.request;
  state_.running.insert(in.request);
  out.push_back(std::move(a));
}

std::vector<Action> Scheduler::schedule() {
  std::vector<Action> out;
  for (const auto& [idx, reason] : pending_rejects_) reject(idx, reason, out);
  pending_rejects_.clear();
  for (std::size_t e = 0; e < encoder_owner_.size() && !encode_queue_.empty(); ++e) {
    if (encoder_owner_[e] >= 0) continue;
    const int idx = encode_queue_.begin()->second;
    encode_queue_.erase(encode_queue_.begin());
    RequestState& r = state_.requests[idx];
    r.phase = Phase::kEncoding;
    encoder_owner_[e] = idx;
    Action a;
    a.kind = ActionKind::kEncode;
    a.request = idx;
    a.devices = {static_cast<int>(e)};
    a.expected_s = profile_.shape(r.spec.shape).encode_s;
    r.service_s += a.expected_s;
    r.expected_end = state_.now + a.expected_s;
    out.push_back(std::move(a));
  }
  reject_unservable(out);
  Decision decision = policy_->decide(state_);
  wake_at_ = decision.wake_at > state_.now ? decision.wake_at : kInf;  // a past one means none
  for (const Action& a : decision.actions) apply(a, out);
  // Requests that ran in the last decision and got no step now lose their group.
  for (const int idx : state_.held_ready) {
    RequestState& r = state_.requests[idx];
    r.held = false;
    Action a;
    a.kind = ActionKind::kPreempt;
    a.request = idx;
    a.devices = r.last_group;
    out.push_back(std::move(a));
  }
  state_.held_ready.clear();
  return out;
}

std::vector<Action> Scheduler::reject_all(const std::string& reason) {
  std::vector<Action> out;
  encode_queue_.clear();
  for (int& owner : encoder_owner_) owner = -1;
  for (std::size_t i = 0; i < state_.requests.size(); ++i)
    if (!state_.requests[i].terminal()) reject(static_cast<int>(i), reason, out);
  pending_rejects_.clear();
  return out;
}

void Scheduler::cancel(int idx, const std::string& reason) {
  if (idx < 0 || idx >= static_cast<int>(state_.requests.size()))
    fail<SchedulerBug>("cancel names unknown request ", idx);
  const RequestState& r = state_.requests[idx];
  if (r.phase != Phase::kQueued && r.phase != Phase::kReady && r.phase != Phase::kAwaitDecode)
    fail<SchedulerBug>("cannot cancel request ", r.spec.id, " in phase ", phase_name(r.phase));
  encode_queue_.erase({-std::int64_t{r.spec.priority}, idx});
  std::erase_if(pending_rejects_, [&](const auto& p) { return p.first == idx; });
  std::vector<Action> ignored;
  reject(idx, reason, ignored);
}

void Scheduler::check_shape(const ShapeProfile& shape) const {
  if (!shape.step_s.count(1) || !shape.decode_s.count(1))
    fail<InvalidInput>("profile shape '", shape.name, "': step_s and decode_s need DoP 1");
  Profile one;
  one.model = profile_.model;
  one.shapes = {shape};
  one.check_fits(cluster_.devices);
  policy_->check(one, cluster_.devices);
}

int Scheduler::add_shape(ShapeProfile shape) {
  if (profile_.find_shape(shape.name) >= 0)
    fail<InvalidInput>("profile shape '", shape.name, "' already exists");
  check_shape(shape);
  profile_.shapes.push_back(std::move(shape));
  ++profile_.revision;
  check_all_ = true;
  return static_cast<int>(profile_.shapes.size()) - 1;
}

void Scheduler::update_shape(int index, ShapeProfile shape) {
  if (index < 0 || index >= static_cast<int>(profile_.shapes.size()))
    fail<InvalidInput>("update_shape: no shape ", index);
  shape.name = profile_.shapes[index].name;
  check_shape(shape);
  profile_.shapes[index] = std::move(shape);
  ++profile_.revision;
  check_all_ = true;
}

void Scheduler::check_invariants() const {
  const auto& s = state_;
  std::vector<int> seen(s.owner.size(), -1);
  for (std::size_t i = 0; i < s.requests.size(); ++i) {
    const RequestState& r = s.requests[i];
    const int idx = static_cast<int>(i);
    const bool busy = r.phase == Phase::kStepping || r.phase == Phase::kDecoding;
    if (busy != s.running.count(idx))
      fail<SchedulerBug>("request ", r.spec.id, " in phase ", phase_name(r.phase), " vs running set");
    if ((r.phase == Phase::kReady) != static_cast<bool>(s.ready.count(idx)))
      fail<SchedulerBug>("request ", r.spec.id, " in phase ", phase_name(r.phase), " vs ready set");
    if ((r.phase == Phase::kAwaitDecode) != static_cast<bool>(s.await_decode.count(idx)))
      fail<SchedulerBug>("request ", r.spec.id, " in phase ", phase_name(r.phase), " vs decode set");
    if (busy == r.group.empty())
      fail<SchedulerBug>("request ", r.spec.id, " in phase ", phase_name(r.phase), " holds ",
                         r.group.size(), " devices");
    if (r.steps_done < 0 || r.steps_done > r.spec.steps)
      fail<SchedulerBug>("request ", r.spec.id, " has done ", r.steps_done, " of ", r.spec.steps, " steps");
    if (r.phase == Phase::kDone && r.steps_done != r.spec.steps)
      fail<SchedulerBug>("request ", r.spec.id, " done after ", r.steps_done, " steps");
    for (int d : r.group) {
      if (seen[d] >= 0)
        fail<SchedulerBug>("device ", d, " in the groups of requests ", s.requests[seen[d]].spec.id,
                           " and ", r.spec.id);
      seen[d] = idx;
      if (s.owner[d] != idx) fail<SchedulerBug>("device ", d, " owner disagrees with request ", r.spec.id);
    }
  }
  for (std::size_t d = 0; d < s.owner.size(); ++d)
    if (s.owner[d] >= 0 && seen[d] != s.owner[d])
      fail<SchedulerBug>("device ", d, " owned by request index ", s.owner[d], " outside its group");
  std::size_t queued = encode_queue_.size();
  for (int owner : encoder_owner_) queued += owner >= 0;
  std::size_t counted = queued + pending_rejects_.size() + s.ready.size() + s.await_decode.size() + s.running.size();
  for (const auto& r : s.requests) counted += r.terminal();
  if (counted != s.requests.size())
    fail<SchedulerBug>("request accounting: ", counted, " placed of ", s.requests.size(), " arrived");
}

}  // namespace ditserve::sched
