// elastic — ditserve's own policy (docs/SCHEDULING.md): DDiT's step granularity, optimal DoP
// and decoupled VAE, TetriServe's deadline awareness, and preemption at step boundaries:
// - every decision point re-deals the free devices among the requests at a step boundary;
//   their latents move, at the profile's move cost, when their group changes;
// - order: priority first (as every policy: policy_util.h; a request that just ran may
//   lose its devices to a higher one, as to any request ordered before it), then three
//   classes: (1) requests that can no longer meet their deadline even at B, oldest
//   first: they count for no SLO any more and every second they wait lengthens the tail;
//   (2) urgent requests, whose slack (deadline - now - (steps left x t(B) + decode)) is
//   below kUrgentShare of their deadline span, plus the occupation W (the longest
//   one-device step of any request running or competing) where W > kOccupiedShare x
//   span: a device such a step takes stays taken for W, so a short request must start
//   while it still has W to spare; least slack first; (3) the rest, largest projected
//   latency first (time waited + steps left x t(B) + decode): least slack against one
//   latency target shared by all requests, which is what bounds the tail (p99) — the
//   request that would finish latest relative to its arrival goes first, so a large
//   request is not queued behind small ones that can still wait, and a small one
//   overtakes once it has waited as long as the large one still needs (or becomes
//   urgent), and no request is delayed past the point where its deadline needs it;
// - pass 1: each, in that order, gets the fewest devices that meet its deadline
//   (TetriServe's fewest GPU-seconds; B for a late request); a request that ran the last
//   step and is not urgent keeps its DoP up to B (DDiT: no preemption without need), the
//   need being a request ordered before it (one that would otherwise finish later);
// - pass 2: devices left over top the same requests up towards B, in the same order;
// - pass 3, work conserving: only when every candidate has devices, the devices that no
//   running request below B could claim at its next boundary go, a profiled DoP at a
//   time, to the request whose remaining steps get the most faster per added device
//   (grow_fastest); splitting past B only happens when the step gets faster; B is the
//   cost-efficient DoP under contention, and with nothing waiting the fastest DoP costs
//   nobody anything (a grown request is shrunk back at its next boundary if work arrives);
// - rollout selection: where DDiT's rule (requests that ran keep their DoP, the rest first
//   come first served at B) would deal the free devices differently from the order above,
//   the known requests are run forward under each rule (sched/lookahead.h: no arrivals,
//   the profile's durations, up to kRolloutHorizonS); where elastic's forecast meets every
//   deadline, the rule whose forecast has fewer misses, then a smaller largest latency,
//   then a smaller mean, deals now (a tie keeps elastic's): DDiT's only where it too meets
//   every deadline and shortens the tail or the mean. Skipped where the forecast cannot be
//   trusted or would cost too much: for good once the requests seen include a one-device
//   step longer than kRolloutOccupiedSpans x the shortest deadline span seen (such a step,
//   arriving at any time, locks devices past a short request's deadline, and a forecast
//   without arrivals cannot see it coming), and above kRolloutMaxJobs requests;
// - the VAE decodes on one device (the lowest id of the last group) as soon as steps end.

#include <algorithm>
#include <limits>
#include <tuple>

#include "sched/lookahead.h"
#include "sched/policy.h"
#include "sched/policy_util.h"

namespace ditserve::sched {
namespace {

// A request is urgent when its slack at B is below this share of (deadline - arrival).
// 0.3 to 0.6 measure alike on the committed workloads (SCHEDULING.md); below 0.3 urgent
// requests start too late to keep SLO attainment.
constexpr double kUrgentShare = 0.4;

// A request whose deadline span is under 1 / kOccupiedShare times the occupation W (the
// longest step t(1) among requests running or competing) adds W to its urgency margin:
// next to Wan 14B's 36 s steps, an Open-Sora 720p (72 s span) or Wan 1.3B (159 s) request
// that waits for its 40% would find every device locked in such steps. 0.4 leaves the
// 1.3B out (SLO 82-95% on the mixed workload); applying it to every request (0) moved
// Open-Sora-only p99s by up to 7% on seed 1; at 0.2 those move within seed noise
// (docs/SCHEDULING.md). A request's own step never counts: its span is over 2 x steps x t(1).
constexpr double kOccupiedShare = 0.2;

// Rollouts (docs/SCHEDULING.md, sixth round): how far the forecast runs (what is left then
// is projected at B); 30 s made the mixed Open-Sora + Wan points worse (mean and SLO), 120 s
// and unbounded measure alike.
constexpr double kRolloutHorizonS = 120;
// No rollout once the longest one-device step among the requests seen exceeds this many
// times the shortest deadline span seen: with Wan 14B's 24 s steps beside 144p's 3 s span
// (the mixed workload) switching rules cost mean latency and SLO, also while no 14B was
// running; Open-Sora's longest step is 0.7 x that span, images' 1.0 x: they roll out.
constexpr double kRolloutOccupiedSpans = 2;
// A bound on a rollout's cost, O(E J log J) per forecast (lookahead.h): 8 devices never
// reach it, and 128 devices at 6 req/s keep the simulation of 10 000 requests at about 3 s.
constexpr int kRolloutMaxJobs = 64;

enum class Class { kLate = 0, kUrgent = 1, kOther = 2 };

// The dealing rules a rollout compares.
enum class Order {
  kElastic,  // the three classes above
  kDdit,     // requests that ran keep their DoP (up to B), then first come first served at B
};

struct Assessment {
  Class cls = Class::kOther;
  double slack = 0;
  double projected = 0;  // latency if it ran at B from now: waited + steps left x t(B) + decode
  int want = 1;          // pass 1's DoP
};

// One place for a request's class, slack, projected latency and pass-1 DoP, at time `now`:
// the decision itself and the rollout's model both use it.
Assessment assess_job(const ForecastJob& j, double now, double occupation) {
  const ShapeProfile& shape = *j.shape;
  const double tail = shape.decode(1) + shape.move_s;
  Assessment a;
  a.slack = j.deadline - now - (j.steps_left * shape.step(j.optimal) + tail);
  a.projected = now - j.arrival + j.steps_left * shape.step(j.optimal) + tail;
  const double span = j.deadline - j.arrival;
  const double margin = kUrgentShare * span + (occupation > kOccupiedShare * span ? occupation : 0.0);
  a.cls = !(a.slack >= 0) ? Class::kLate : a.slack < margin ? Class::kUrgent : Class::kOther;
  a.want = j.optimal;
  if (a.cls == Class::kLate) return a;
  if (a.cls == Class::kOther && j.held && j.last_dop > 0) {
    a.want = std::min(j.optimal, j.last_dop);
    return a;
  }
  double best = std::numeric_limits<double>::infinity();
  for (const auto& [k, t] : shape.step_s) {
    if (k > j.optimal) break;
    if (now + j.steps_left * t + tail <= j.deadline && k * t < best) {
      best = k * t;
      a.want = k;
    }
  }
  return a;
}

Rank rank_of(Order order, const ForecastJob& j, const Assessment& a) {
  Rank r;
  if (order == Order::kElastic) {
    r.tier = static_cast<int>(a.cls);
    r.key = a.cls == Class::kUrgent ? a.slack : a.cls == Class::kOther ? -a.projected : 0.0;
    r.want = a.want;
  } else {  // ties go to arrival order
    const bool keeps = j.held && j.last_dop > 0;
    r.tier = keeps ? 0 : 1;
    r.want = keeps ? std::min(j.optimal, j.last_dop) : j.optimal;
  }
  return r;
}

struct Candidate {
  ForecastJob job;
  Assessment a;
  Rank rank;
  std::vector<int> devices;
};

class ElasticPolicy : public Policy {
 public:
  explicit ElasticPolicy(double min_gain) : min_gain_(min_gain) {}

  std::string name() const override { return "elastic"; }

  Decision decide(const SchedState& s) override {
    Decision out;
    std::vector<int> free = s.free_devices();
    decode_decoupled(s, free, out);
    if (free.empty() || s.ready.empty()) return out;
    const int n = static_cast<int>(s.owner.size());
    // Candidates: all requests that just ran, plus the oldest waiting ones (bounded, so a
    // flood of arrivals keeps each decision O(N log N)).
    std::vector<int> ids(s.held_ready.begin(), s.held_ready.end());
    const std::size_t window = ids.size() + 2 * static_cast<std::size_t>(n);
    for (const int r : waiting_order(s, s.ready, window)) {
      if (ids.size() >= window) break;
      if (!s.held_ready.count(r)) ids.push_back(r);
    }
    double occupation = 0;  // how long a one-device step started now may hold its device
    for (const int r : ids) occupation = std::max(occupation, s.shape_of(r).step(1));
    for (const int r : s.running) occupation = std::max(occupation, s.shape_of(r).step(1));
    std::vector<Candidate> cand;
    cand.reserve(ids.size());
    for (const int r : ids) {
      Candidate c;
      c.job = job_of(s, r, n);
      c.a = assess_job(c.job, s.now, occupation);
      cand.push_back(std::move(c));
    }
    for (const Candidate& c : cand)
      shortest_span_seen_ = std::min(shortest_span_seen_, c.job.deadline - c.job.arrival);
    for (const int r : s.running)
      shortest_span_seen_ = std::min(shortest_span_seen_, s.requests[r].spec.deadline - s.requests[r].spec.arrival);
    longest_step_seen_ = std::max(longest_step_seen_, occupation);
    const bool may_roll_out = longest_step_seen_ <= kRolloutOccupiedSpans * shortest_span_seen_;
    const Order order =
        may_roll_out ? choose_order(s, cand, static_cast<int>(free.size()), occupation, out) : Order::kElastic;
    for (Candidate& c : cand) c.rank = rank_of(order, c.job, c.a);
    std::stable_sort(cand.begin(), cand.end(), [](const Candidate& a, const Candidate& b) {
      if (a.rank.tier != b.rank.tier) return a.rank.tier < b.rank.tier;
      if (a.rank.key != b.rank.key) return a.rank.key < b.rank.key;
      return a.job.request < b.job.request;  // arrival order
    });
    priority_first(s, cand, [](const Candidate& c) { return c.job.request; });
    for (Candidate& c : cand) {  // pass 1
      if (free.empty()) break;
      const int k = largest_dop_at_most(*c.job.shape, std::min<int>(c.rank.want, free.size()));
      if (k > 0) c.devices = take_devices(free, k, s.requests[c.job.request].last_group);
    }
    for (Candidate& c : cand) {  // pass 2
      if (free.empty()) break;
      if (c.devices.empty()) continue;
      const int have = static_cast<int>(c.devices.size());
      const int k = largest_dop_at_most(*c.job.shape, std::min<int>(c.job.optimal, have + free.size()));
      if (k <= have) continue;
      auto more = take_devices(free, k - have, s.requests[c.job.request].last_group);
      c.devices.insert(c.devices.end(), more.begin(), more.end());
    }
    const bool all_placed =
        cand.size() == s.ready.size() &&
        std::all_of(cand.begin(), cand.end(), [](const Candidate& c) { return !c.devices.empty(); });
    if (all_placed && !free.empty()) {  // pass 3
      std::vector<GrowthClaim> claims;
      claims.reserve(cand.size());
      for (Candidate& c : cand) {
        const RequestState& st = s.requests[c.job.request];
        claims.push_back({c.job.shape, st.steps_left(), &c.devices, &st.last_group});
      }
      grow_fastest(claims, free, free_after_claims(s, static_cast<int>(free.size()), n));
    }
    for (Candidate& c : cand)
      if (!c.devices.empty()) out.actions.push_back(step_action(c.job.request, std::move(c.devices), 1));
    return out;
  }

 private:
  // Free devices that no stepping request below B could take at its next boundary.
  int free_after_claims(const SchedState& s, int free, int devices) const {
    int spare = free;
    for (const int r : s.running) {
      const RequestState& st = s.requests[r];
      if (st.phase != Phase::kStepping) continue;
      spare -= std::max(0, optimal_dop(s, st.spec.shape, devices) - static_cast<int>(st.group.size()));
    }
    return std::max(0, spare);
  }

  // Request r (kReady, or kStepping: at its boundary when its step ends) for the model.
  ForecastJob job_of(const SchedState& s, int r, int devices) const {
    const RequestState& st = s.requests[r];
    ForecastJob j;
    j.request = r;
    j.shape = &s.shape_of(r);
    j.arrival = st.spec.arrival;
    j.deadline = st.spec.deadline;
    j.priority = st.spec.priority;
    j.steps_left = st.steps_left();
    j.optimal = optimal_dop(s, st.spec.shape, devices);
    if (st.phase == Phase::kStepping) {
      j.boundary = std::max(s.now, st.expected_end);
      j.last_dop = static_cast<int>(st.group.size());
      j.held = true;
    } else {
      j.boundary = s.now;
      j.last_dop = static_cast<int>(st.last_group.size());
      j.held = st.held;
    }
    return j;
  }

  // Pass 1 and 2's device counts per candidate (index into cand) under `order`.
  static std::vector<int> first_deal(Order order, const std::vector<Candidate>& cand,
                                     const std::vector<ForecastJob>& jobs, int free) {
    std::vector<std::tuple<int, int, double, int, int>> ranked;  // (-priority, tier, key, id, index)
    std::vector<int> want(cand.size());
    for (std::size_t i = 0; i < cand.size(); ++i) {
      const Rank r = rank_of(order, cand[i].job, cand[i].a);
      want[i] = r.want;
      ranked.emplace_back(-cand[i].job.priority, r.tier, r.key, cand[i].job.request, static_cast<int>(i));
    }
    std::sort(ranked.begin(), ranked.end());
    std::vector<int> in_order;
    for (const auto& e : ranked) in_order.push_back(std::get<4>(e));
    std::vector<int> devices(cand.size(), 0);
    for (const Grant& g : deal_counts(jobs, in_order, want, free)) devices[g.job] = g.devices;
    return devices;
  }

  // Rollout selection (the header): the rule that deals now.
  Order choose_order(const SchedState& s, const std::vector<Candidate>& cand, int free, double occupation,
                     const Decision& decodes) const {
    std::vector<ForecastJob> jobs;
    jobs.reserve(cand.size());
    for (const Candidate& c : cand) jobs.push_back(c.job);
    const std::vector<int> elastic_first = first_deal(Order::kElastic, cand, jobs, free);
    const std::vector<int> ddit_first = first_deal(Order::kDdit, cand, jobs, free);
    if (elastic_first == ddit_first) return Order::kElastic;
    const int n = static_cast<int>(s.owner.size());
    Lookahead model(s.now, free, {.quantum_s = 0, .horizon_s = kRolloutHorizonS});
    for (const ForecastJob& j : jobs) model.add_job(j);
    for (const int r : s.running) {
      const RequestState& st = s.requests[r];
      if (st.phase == Phase::kStepping) model.add_job(job_of(s, r, n));
      else model.add_release(std::max(s.now, st.expected_end), static_cast<int>(st.group.size()));
    }
    if (static_cast<int>(model.jobs().size()) > kRolloutMaxJobs) return Order::kElastic;
    for (const Action& a : decodes.actions) {
      const int k = static_cast<int>(a.devices.size());
      model.add_release(s.now + s.shape_of(a.request).decode(k), k);
    }
    auto forecast = [&](Order order, std::vector<int> first) {
      first.resize(model.jobs().size(), 0);
      return model.run(first, [&](const ForecastJob& j, double t) {
        return rank_of(order, j, assess_job(j, t, occupation));
      });
    };
    // Deadlines first: where elastic's own order forecasts a miss, it deals (DDiT's order
    // would then win only on the tail, at the price of SLO attainment in overload).
    const Forecast elastic = forecast(Order::kElastic, elastic_first);
    if (elastic.misses > 0) return Order::kElastic;
    const Forecast ddit = forecast(Order::kDdit, ddit_first);
    return better(ddit, elastic) ? Order::kDdit : Order::kElastic;
  }

  // B per shape, computed once per cluster size and profile revision.
  int optimal_dop(const SchedState& s, int shape, int devices) const {
    if (optimal_devices_ != devices || optimal_revision_ != s.profile->revision) {
      optimal_.clear();
      for (const auto& sp : s.profile->shapes) optimal_.push_back(sp.optimal_dop(min_gain_, devices));
      optimal_devices_ = devices;
      optimal_revision_ = s.profile->revision;
    }
    return optimal_[shape];
  }

  double min_gain_;
  // Over the requests seen (candidates and running): the longest one-device step and the
  // shortest deadline span, which decide whether rollouts can be trusted (kRolloutOccupiedSpans).
  double longest_step_seen_ = 0;
  double shortest_span_seen_ = std::numeric_limits<double>::infinity();
  mutable std::vector<int> optimal_;
  mutable int optimal_devices_ = -1;
  mutable int optimal_revision_ = -1;
};

}  // namespace

std::unique_ptr<Policy> make_elastic_policy(const PolicyOptions& options) {
  return std::make_unique<ElasticPolicy>(options.min_gain);
}

}  // namespace ditserve::sched
