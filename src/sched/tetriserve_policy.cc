// tetriserve — TetriServe (arXiv 2510.01565), as docs/SCHEDULING.md states it:
// - time runs in fixed rounds of length tau; decisions happen only at round starts;
// - per request, the DoP with the fewest GPU-seconds (k x t(k), the round-trip of a round
//   included: k x max(tau, q t(k)) / q per step) that still meets its
//   deadline; a request that cannot meet it even at the fastest DoP is "late" and gets at
//   most one device (best effort);
// - packing: a group knapsack over the free devices, each request either idle or running
//   q = min(steps left, max(1, floor(tau / t(k)))) steps on k devices; an option is worth 1
//   if afterwards the request can still finish by its deadline at the fastest step time
//   (ties: more requests run, earlier deadlines first); O(R x N) dynamic programme;
// - placement preservation (same devices across rounds when free) and work-conserving
//   scale-up (leftover devices go to packed requests whose step gets faster);
// - the VAE decodes on one device as soon as the last step ends, off the critical path.

#include <algorithm>
#include <cmath>
#include <limits>

#include "sched/error.h"
#include "sched/policy.h"
#include "sched/policy_util.h"

namespace ditserve::sched {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Option {
  int dop = 0;
  int steps = 0;
  double value_run = 0;
  double value_idle = 0;
};

class TetriServePolicy : public Policy {
 public:
  TetriServePolicy(double round_s, double min_gain) : round_s_(round_s), min_gain_(min_gain) {}

  std::string name() const override { return "tetriserve"; }

  void check(const Profile& profile, int devices) const override {
    if (round_s_ < 0) fail<InvalidInput>("policy tetriserve: the round length must be > 0");
  }

  Decision decide(const SchedState& s) override {
    if (round_s_ <= 0) round_s_ = default_round(*s.profile, static_cast<int>(s.owner.size()));
    Decision out;
    std::vector<int> free = s.free_devices();
    decode_decoupled(s, free, out);
    constexpr double kEps = 1e-9;
    if (s.now + kEps < next_round_) {
      out.wake_at = next_round_;
      return out;
    }
    if (s.ready.empty()) return out;  // idle: the next arrival starts a round
    next_round_ = s.now + round_s_;
    out.wake_at = next_round_;
    pack_round(s, free, out);
    return out;
  }

 private:
  // tau = 5 steps (TetriServe: 1 is too costly, 10 too rigid) of the smallest request at
  // its optimal DoP. The paper's "typical request" would be the median shape, but our
  // mixes span 45x in step time: a median-sized round makes the smallest requests wait
  // most of their deadline for a round start (SCHEDULING.md has the measurements).
  double default_round(const Profile& p, int devices) const {
    double t = std::numeric_limits<double>::infinity();
    for (const auto& shape : p.shapes) t = std::min(t, shape.step(shape.optimal_dop(min_gain_, devices)));
    return 5.0 * t;
  }

  void pack_round(const SchedState& s, std::vector<int>& free, Decision& out) {
    // Candidates: the ready requests, earliest deadline first (priority first, as every
    // policy: policy_util.h), at most 4 per device so a flood of arrivals keeps the DP at
    // O(4N x N).
    std::vector<int> cand(s.ready.begin(), s.ready.end());
    std::stable_sort(cand.begin(), cand.end(), [&](int a, int b) {
      return s.requests[a].spec.deadline < s.requests[b].spec.deadline;
    });
    priority_first(s, cand);
    const std::size_t window = 4 * s.owner.size();
    if (cand.size() > window) cand.resize(window);
    const int rn = static_cast<int>(cand.size());
    std::vector<Option> opt(rn);
    // Priority tiers are packed one after another, highest first, each into the devices
    // the tiers before it left; with equal priorities there is one tier.
    std::vector<int> chosen;  // earliest deadline first within each tier
    int left = static_cast<int>(free.size());
    for (int lo = 0, hi = 0; lo < rn; lo = hi) {
      while (hi < rn && s.requests[cand[hi]].spec.priority == s.requests[cand[lo]].spec.priority) ++hi;
      for (int i = lo; i < hi; ++i) opt[i] = plan(s, cand[i], i - lo, hi - lo);
      for (int i : pack_tier(opt, lo, hi, left)) {
        chosen.push_back(i);
        left -= opt[i].dop;
      }
    }
    // Work-conserving scale-up: leftover devices to packed requests that get faster.
    for (bool grew = true; grew && left > 0;) {
      grew = false;
      for (int i : chosen) {
        const ShapeProfile& shape = s.shape_of(cand[i]);
        const int next = next_dop(shape, opt[i].dop);
        if (next == 0 || next - opt[i].dop > left || !(shape.step(next) < shape.step(opt[i].dop))) continue;
        left -= next - opt[i].dop;
        opt[i].dop = next;
        opt[i].steps = steps_in_round(shape, next, s.requests[cand[i]].steps_left());
        grew = true;
      }
    }
    for (int i : chosen) {
      const int r = cand[i];
      out.actions.push_back(step_action(r, take_devices(free, opt[i].dop, s.requests[r].last_group), opt[i].steps));
    }
  }

  // Group knapsack over opt[lo, hi) with `cap` devices: best[i][c] = best value of the
  // first i requests using <= c devices. Returns the indices that run, ascending.
  static std::vector<int> pack_tier(const std::vector<Option>& opt, int lo, int hi, int cap) {
    const int rn = hi - lo;
    std::vector<std::vector<double>> best(rn + 1, std::vector<double>(cap + 1, 0.0));
    for (int i = 0; i < rn; ++i) {
      const Option& o = opt[lo + i];
      for (int c = 0; c <= cap; ++c) {
        double v = best[i][c] + o.value_idle;
        if (o.dop <= c) v = std::max(v, best[i][c - o.dop] + o.value_run);
        best[i + 1][c] = v;
      }
    }
    std::vector<int> chosen;
    for (int i = rn - 1, c = cap; i >= 0; --i) {
      const Option& o = opt[lo + i];
      const bool run = o.dop <= c && best[i + 1][c] == best[i][c - o.dop] + o.value_run &&
                       best[i + 1][c] != best[i][c] + o.value_idle;
      if (run) {
        chosen.push_back(lo + i);
        c -= o.dop;
      }
    }
    std::reverse(chosen.begin(), chosen.end());
    return chosen;
  }

  int steps_in_round(const ShapeProfile& shape, int dop, int left) const {
    const int fit = static_cast<int>(std::floor(round_s_ / shape.step(dop)));
    return std::min(left, std::max(1, fit));
  }

  Option plan(const SchedState& s, int r, int rank, int count) const {
    const RequestState& st = s.requests[r];
    const ShapeProfile& shape = s.shape_of(r);
    const int n = st.steps_left();
    const double tail = shape.decode(1);
    const double deadline = st.spec.deadline;
    const int devices = static_cast<int>(s.owner.size());
    Option o;
    // The plan with the fewest GPU-seconds that meets the deadline. Devices are held for
    // whole rounds, so a step costs k x max(tau, q t(k)) / q, not k x t(k).
    double best_cost = kInf;
    for (const auto& [k, t] : shape.step_s) {
      if (k > devices) continue;
      const int q = steps_in_round(shape, k, n);
      const double cost = k * std::max(round_s_, q * t) / q;
      if (s.now + n * t + tail <= deadline && cost < best_cost) {
        best_cost = cost;
        o.dop = k;
      }
    }
    const bool late = o.dop == 0;
    if (late) o.dop = 1;  // best effort on one device
    o.steps = steps_in_round(shape, o.dop, n);
    const double fastest = shape.fastest_step();
    const double round_end = s.now + std::max(round_s_, o.steps * shape.step(o.dop));
    const bool ok_run = !late && round_end + (n - o.steps) * fastest + tail <= deadline;
    const bool ok_idle = !late && s.now + round_s_ + n * fastest + tail <= deadline;
    // 1 per request on track; a small bonus for running, larger for earlier deadlines.
    // The bonuses of all requests together stay below 0.5, so they only break ties.
    const double bonus = (1.0 + static_cast<double>(count - rank) / (count + 1)) / (4.0 * (count + 1));
    o.value_run = (ok_run ? 1.0 : 0.0) + bonus;
    o.value_idle = ok_idle ? 1.0 : 0.0;
    return o;
  }

  double round_s_;
  double min_gain_;
  double next_round_ = -std::numeric_limits<double>::infinity();
};

}  // namespace

std::unique_ptr<Policy> make_tetriserve_policy(const PolicyOptions& options) {
  return std::make_unique<TetriServePolicy>(options.round_s, options.min_gain);
}

}  // namespace ditserve::sched
