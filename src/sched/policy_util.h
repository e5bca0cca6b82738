#pragma once
// Small helpers that several policies share: picking devices, building actions, and the
// decoupled VAE decode (one device, the lowest id of the request's last group: DDiT).

#include <algorithm>
#include <cstddef>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "sched/action.h"
#include "sched/state.h"

namespace ditserve::sched {

// Priority, the one rule every policy shares (docs/SCHEDULING.md): among requests waiting
// for devices, a higher RequestSpec::priority is served first; the policy's own order
// decides among equal priorities. A policy applies it by taking waiting requests from
// waiting_order(), or, where it sorts them itself, by calling priority_first() after.

// Stable-sorts `items`, already in the policy's own order, so higher priorities come first.
template <class T, class RequestOf>
void priority_first(const SchedState& s, std::vector<T>& items, RequestOf request_of) {
  if (!s.any_priority) return;
  std::stable_sort(items.begin(), items.end(), [&](const T& a, const T& b) {
    return s.requests[request_of(a)].spec.priority > s.requests[request_of(b)].spec.priority;
  });
}
inline void priority_first(const SchedState& s, std::vector<int>& requests) {
  priority_first(s, requests, [](int r) { return r; });
}

// The first `limit` members of `waiting` (s.ready or s.await_decode) in serving order:
// priority first, then arrival.
std::vector<int> waiting_order(const SchedState& s, const std::set<int>& waiting,
                               std::size_t limit = std::numeric_limits<std::size_t>::max());

// "needs 4 devices, 3 in service": why a request can never run (Policy::unservable).
std::string too_few_devices(int need, int have);

// Removes k devices from `free` (ascending ids) and returns them: those in `prefer` first
// (placement preservation: latents stay put), then the lowest ids.
// REQUIRES: k <= free.size().
std::vector<int> take_devices(std::vector<int>& free, int k, const std::vector<int>& prefer);

// The largest DoP in the shape's step table that is <= limit; 0 if none.
int largest_dop_at_most(const ShapeProfile& shape, int limit);
// The next DoP above `dop` in the step table; 0 if none.
int next_dop(const ShapeProfile& shape, int dop);

// A request that may grow past the DoP it was given: its shape, the steps it has left, the
// devices it holds now (grown in place) and where its latents are (preferred).
struct GrowthClaim {
  const ShapeProfile* shape = nullptr;
  int steps_left = 0;
  std::vector<int>* devices = nullptr;
  const std::vector<int>* prefer = nullptr;
};

// Work-conserving scale-up: hands at most `spare` devices of `free` to the claims, each
// time to the claim and profiled DoP k that save the most seconds per added device,
// (steps_left x (t(have) - t(k)) - move_s) / (k - have), while some saving is positive.
// A shape that gets no faster on more devices never grows. REQUIRES: every claim holds
// devices whose count is a profiled DoP; spare <= free.size().
void grow_fastest(std::vector<GrowthClaim>& claims, std::vector<int>& free, int spare);

Action step_action(int request, std::vector<int> devices, int steps);
Action decode_action(int request, std::vector<int> devices);

// Decodes every kAwaitDecode request on one device, preferring the lowest id of its last
// group, while devices remain in `free`.
void decode_decoupled(const SchedState& s, std::vector<int>& free, Decision& out);

}  // namespace ditserve::sched
