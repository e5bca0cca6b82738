#include "sched/policy_util.h"

#include <algorithm>

namespace ditserve::sched {

std::vector<int> waiting_order(const SchedState& s, const std::set<int>& waiting, std::size_t limit) {
  std::vector<int> out;
  if (!s.any_priority) {  // arrival order is serving order: copy no more than asked
    for (auto it = waiting.begin(); it != waiting.end() && out.size() < limit; ++it) out.push_back(*it);
    return out;
  }
  out.assign(waiting.begin(), waiting.end());
  priority_first(s, out);
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::string too_few_devices(int need, int have) {
  return "needs " + std::to_string(need) + (need == 1 ? " device, " : " devices, ") + std::to_string(have) +
         " in service";
}

std::vector<int> take_devices(std::vector<int>& free, int k, const std::vector<int>& prefer) {
  std::vector<int> got;
  got.reserve(k);
  for (int d : prefer) {
    if (static_cast<int>(got.size()) == k) break;
    const auto it = std::lower_bound(free.begin(), free.end(), d);
    if (it != free.end() && *it == d) {
      got.push_back(d);
      free.erase(it);
    }
  }
  while (static_cast<int>(got.size()) < k) {
    got.push_back(free.front());
    free.erase(free.begin());
  }
  std::sort(got.begin(), got.end());
  return got;
}

int largest_dop_at_most(const ShapeProfile& shape, int limit) {
  int best = 0;
  for (const auto& [k, t] : shape.step_s)
    if (k <= limit) best = k;
  return best;
}

int next_dop(const ShapeProfile& shape, int dop) {
  const auto it = shape.step_s.upper_bound(dop);
  return it == shape.step_s.end() ? 0 : it->first;
}

void grow_fastest(std::vector<GrowthClaim>& claims, std::vector<int>& free, int spare) {
  while (spare > 0) {
    double best_gain = 0;
    GrowthClaim* best = nullptr;
    int best_k = 0;
    for (GrowthClaim& c : claims) {
      const int have = static_cast<int>(c.devices->size());
      const double now_s = c.shape->step(have);
      for (const auto& [k, t] : c.shape->step_s) {
        if (k <= have) continue;
        if (k > have + spare) break;
        const double gain = (c.steps_left * (now_s - t) - c.shape->move_s) / (k - have);
        if (gain > best_gain) {
          best_gain = gain;
          best = &c;
          best_k = k;
        }
      }
    }
    if (best == nullptr) return;
    const int add = best_k - static_cast<int>(best->devices->size());
    std::vector<int> more = take_devices(free, add, *best->prefer);
    best->devices->insert(best->devices->end(), more.begin(), more.end());
    spare -= add;
  }
}

Action step_action(int request, std::vector<int> devices, int steps) {
  Action a;
  a.kind = ActionKind::kStep;
  a.request = request;
  a.devices = std::move(devices);
  std::sort(a.devices.begin(), a.devices.end());
  a.steps = steps;
  return a;
}

Action decode_action(int request, std::vector<int> devices) {
  Action a;
  a.kind = ActionKind::kDecode;
  a.request = request;
  a.devices = std::move(devices);
  return a;
}

void decode_decoupled(const SchedState& s, std::vector<int>& free, Decision& out) {
  for (const int r : waiting_order(s, s.await_decode, free.size())) {
    const std::vector<int>& last = s.requests[r].last_group;
    out.actions.push_back(decode_action(r, take_devices(free, 1, last)));
  }
}

}  // namespace ditserve::sched
