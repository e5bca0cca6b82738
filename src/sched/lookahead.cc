#include "sched/lookahead.h"

#include <algorithm>
#include <queue>
#include <tuple>

#include "sched/policy_util.h"

namespace ditserve::sched {

bool better(const Forecast& a, const Forecast& b) {
  constexpr double kSameS = 1e-6;
  if (a.misses != b.misses) return a.misses < b.misses;
  if (a.max_latency_s < b.max_latency_s - kSameS) return true;
  if (b.max_latency_s < a.max_latency_s - kSameS) return false;
  return a.mean_latency_s < b.mean_latency_s - kSameS;
}

std::vector<Grant> deal_counts(const std::vector<ForecastJob>& jobs, const std::vector<int>& order,
                               const std::vector<int>& want, int& free) {
  std::vector<Grant> placed;
  for (const int i : order) {  // pass 1: what the rule wants
    if (free == 0) break;
    const int k = largest_dop_at_most(*jobs[i].shape, std::min(want[i], free));
    if (k == 0) continue;
    placed.push_back({i, k});
    free -= k;
  }
  for (Grant& g : placed) {  // pass 2: top up towards B
    if (free == 0) break;
    const ForecastJob& job = jobs[g.job];
    const int k = largest_dop_at_most(*job.shape, std::min(job.optimal, g.devices + free));
    if (k <= g.devices) continue;
    free -= k - g.devices;
    g.devices = k;
  }
  return placed;
}

Forecast Lookahead::run(const std::vector<int>& first, const RankRule& rule) const {
  struct Event {
    double at;
    int devices;  // released at `at`
    int job;      // >= 0: the job is at a step boundary (its last_dop devices come back)
  };
  auto later = [](const Event& a, const Event& b) { return a.at > b.at; };
  std::priority_queue<Event, std::vector<Event>, decltype(later)> events(later);
  std::vector<ForecastJob> jobs = jobs_;
  int free = free_;
  std::vector<int> waiting;
  Forecast out;
  double latency_sum = 0;
  auto finish = [&](const ForecastJob& job, double at) {
    const double latency = at - job.arrival;
    out.misses += at > job.deadline;
    out.max_latency_s = std::max(out.max_latency_s, latency);
    latency_sum += latency;
  };
  // A chunk of steps on k devices (at least one, and as many as fit in the quantum); after
  // the last, the decode on one of them.
  auto start = [&](int i, int k, double at) {
    ForecastJob& job = jobs[i];
    const double move = job.last_dop > 0 && k != job.last_dop ? job.shape->move_s : 0.0;
    const double step = job.shape->step(k);
    const int steps = std::clamp(static_cast<int>(options_.quantum_s / step), 1, job.steps_left);
    const double end = at + move + steps * step;
    job.steps_left -= steps;
    job.last_dop = k;
    job.boundary = end;
    job.held = true;
    if (job.steps_left > 0) {
      events.push({end, 0, i});
      return;
    }
    const double done = end + job.shape->decode(1);
    if (k > 1) events.push({end, k - 1, -1});
    events.push({done, 1, -1});
    finish(job, done);
  };
  for (const Release& r : releases_) events.push({r.at, r.devices, -1});
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const int id = static_cast<int>(i);
    if (first[i] > 0) {
      free -= first[i];
      start(id, first[i], now_);
    } else if (jobs[i].boundary > now_) {
      events.push({jobs[i].boundary, 0, id});
    } else {
      waiting.push_back(id);
    }
  }
  std::vector<std::tuple<int, int, double, int, int>> ranked;  // (-priority, tier, key, id, job)
  std::vector<int> order;
  std::vector<int> want(jobs.size(), 0);
  auto deal = [&](double t) {
    ranked.clear();
    for (const int i : waiting) {
      ForecastJob job = jobs[i];
      job.held = job.held && job.boundary == t;  // it ran the step before only at its boundary
      const Rank r = rule(job, t);
      want[i] = r.want;
      ranked.emplace_back(-job.priority, r.tier, r.key, job.request, i);
    }
    std::sort(ranked.begin(), ranked.end());
    order.clear();
    for (const auto& entry : ranked) order.push_back(std::get<4>(entry));
    for (const Grant& g : deal_counts(jobs, order, want, free)) {
      start(g.job, g.devices, t);
      waiting.erase(std::find(waiting.begin(), waiting.end(), g.job));
    }
  };
  const double end = now_ + options_.horizon_s;
  double t = now_;
  while (!events.empty()) {
    t = events.top().at;
    if (t > end) break;
    while (!events.empty() && events.top().at <= t) {
      const Event e = events.top();
      events.pop();
      free += e.devices;
      if (e.job < 0) continue;
      ForecastJob& job = jobs[e.job];
      if (job.steps_left > 0) {
        free += job.last_dop;
        waiting.push_back(e.job);
      } else {  // its last step ends: it decodes on one device of its group
        free += job.last_dop - 1;
        events.push({t + job.shape->decode(1), 1, -1});
        finish(job, t + job.shape->decode(1));
      }
    }
    if (!waiting.empty() && free > 0) deal(t);
  }
  // Past the horizon: what is left runs at B from where it is.
  auto project = [&](const ForecastJob& job) {
    finish(job, std::max(t, job.boundary) + job.steps_left * job.shape->step(job.optimal) + job.shape->decode(1));
  };
  for (const int i : waiting) project(jobs[i]);
  while (!events.empty()) {
    const Event e = events.top();
    events.pop();
    if (e.job >= 0) project(jobs[e.job]);
  }
  out.mean_latency_s = jobs.empty() ? 0.0 : latency_sum / jobs.size();
  return out;
}

}  // namespace ditserve::sched
