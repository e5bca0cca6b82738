// The forward model of sched/lookahead.h on hand-made scenarios whose outcome is known:
// who goes first decides misses and latencies, a step in flight comes back at its boundary,
// the horizon projects what is left at B, and the forecasts compare lexicographically.

#include "sched/lookahead.h"

#include <gtest/gtest.h>

#include "sched/test_profiles.h"

namespace ditserve::sched {
namespace {

const Profile& profile() {
  static const Profile p = testing::small_large_profile();  // small: 50 ms steps; large: 1 s
  return p;
}

ForecastJob job(int request, int shape, double arrival, double deadline, int steps) {
  ForecastJob j;
  j.request = request;
  j.shape = &profile().shape(shape);
  j.arrival = arrival;
  j.deadline = deadline;
  j.steps_left = steps;
  return j;
}

// Lower request id first, one device each (B = 1 for these jobs).
Rank by_id(const ForecastJob& j, double) { return {0, static_cast<double>(j.request), 1}; }
Rank by_reverse_id(const ForecastJob& j, double) { return {0, -static_cast<double>(j.request), 1}; }
Rank one_device(const ForecastJob&, double) { return {0, 0, 1}; }

TEST(Lookahead, WhoGoesFirstDecidesMissesAndLatencies) {
  // One device: small (10 x 50 ms + 100 ms decode = 0.6 s, deadline 1 s) and large
  // (10 x 1 s + 0.4 s = 10.4 s), both arrived at 0.
  Lookahead model(0.0, 1);
  model.add_job(job(0, 0, 0.0, 1.0, 10));
  model.add_job(job(1, 1, 0.0, 100.0, 10));
  const Forecast small_first = model.run({1, 0}, by_id);
  EXPECT_EQ(small_first.misses, 0);
  EXPECT_NEAR(small_first.max_latency_s, 11.0, 1e-9);
  EXPECT_NEAR(small_first.mean_latency_s, (0.6 + 11.0) / 2, 1e-9);
  const Forecast large_first = model.run({0, 1}, by_reverse_id);
  EXPECT_EQ(large_first.misses, 1);  // the small one finishes at 11 s
  EXPECT_NEAR(large_first.max_latency_s, 11.0, 1e-9);
  EXPECT_NEAR(large_first.mean_latency_s, (10.4 + 11.0) / 2, 1e-9);
  EXPECT_TRUE(better(small_first, large_first));
  EXPECT_FALSE(better(large_first, small_first));
}

TEST(Lookahead, AStepInFlightComesBackToBeDealtAtItsBoundary) {
  // Two devices: the large job runs a step on one until 0.5 s, with 2 steps left after it;
  // the small job takes the free one now (done at 0.6 s). At 0.5 s the large job is dealt
  // again and keeps its device: 0.5 + 2 x 1 s + 0.4 s decode = 2.9 s.
  Lookahead model(0.0, 1);
  ForecastJob running = job(0, 1, 0.0, 100.0, 2);
  running.boundary = 0.5;
  running.last_dop = 1;
  running.held = true;
  model.add_job(running);
  model.add_job(job(1, 0, 0.0, 100.0, 10));
  const Forecast f = model.run({0, 1}, by_id);
  EXPECT_EQ(f.misses, 0);
  EXPECT_NEAR(f.max_latency_s, 2.9, 1e-9);
  EXPECT_NEAR(f.mean_latency_s, (2.9 + 0.6) / 2, 1e-9);
}

TEST(Lookahead, ADecodeInFlightReleasesItsDeviceWhenItEnds) {
  // One device, decoding until 2 s: the small job waits for it (2 + 0.6 s).
  Lookahead model(0.0, 0);
  model.add_release(2.0, 1);
  model.add_job(job(0, 0, 0.0, 2.5, 10));
  const Forecast f = model.run({0}, by_id);
  EXPECT_EQ(f.misses, 1);
  EXPECT_NEAR(f.max_latency_s, 2.6, 1e-9);
}

TEST(Lookahead, PastTheHorizonWhatIsLeftIsProjectedAtB) {
  // The large job alone on one device, one step at a time; the model stops at its boundary
  // after 2 s, at the first event past it (3 s, the third step's end), and projects the 7
  // steps left at B = 4 (0.27 s each) + 0.4 s decode: 3 + 1.89 + 0.4 = 5.29 s.
  Lookahead model(0.0, 1, {.quantum_s = 0, .horizon_s = 2.0});
  ForecastJob large = job(0, 1, 0.0, 100.0, 10);
  large.optimal = 4;
  model.add_job(large);
  const Forecast f = model.run({1}, one_device);
  EXPECT_NEAR(f.max_latency_s, 5.29, 1e-9);

  // Unbounded, it runs on one device to the end: 10 x 1 s + 0.4 s.
  Lookahead whole(0.0, 1);
  whole.add_job(large);
  EXPECT_NEAR(whole.run({1}, one_device).max_latency_s, 10.4, 1e-9);
}

TEST(Lookahead, AQuantumRunsSeveralStepsBeforeTheNextDeal) {
  // One device, the large job first; the small one (id 1) ranks first from the first deal
  // on. One step at a time it takes over after the large job's first step (1 + 0.6 s);
  // with a 5 s quantum only after 5 steps (5 + 0.6 s).
  for (const auto& [quantum, small_done] : {std::pair{0.0, 1.6}, std::pair{5.0, 5.6}}) {
    Lookahead model(0.0, 1, {.quantum_s = quantum});
    model.add_job(job(0, 1, 0.0, 100.0, 10));
    model.add_job(job(1, 0, 0.0, 100.0, 10));
    const Forecast f = model.run({1, 0}, by_reverse_id);
    // The large job finishes last: its 10 s + 0.4 s decode + the small one's 0.6 s (the
    // model counts a move only when the DoP changes: it does not track device ids).
    EXPECT_NEAR(f.max_latency_s, 11.0, 1e-9) << quantum;
    EXPECT_NEAR(f.mean_latency_s, (11.0 + small_done) / 2, 1e-9) << quantum;
  }
}

TEST(Lookahead, ForecastsCompareByMissesThenLargestThenMeanLatency) {
  EXPECT_TRUE(better({0, 50, 40}, {1, 10, 5}));
  EXPECT_TRUE(better({0, 10, 40}, {0, 11, 1}));
  EXPECT_TRUE(better({0, 10, 4}, {0, 10, 5}));
  EXPECT_FALSE(better({0, 10, 5}, {0, 10, 5}));
  EXPECT_FALSE(better({0, 10, 5}, {0, 10 + 1e-9, 5}));  // under a microsecond: equal
}

TEST(Lookahead, DealCountsGivesWhatEachWantsThenTopsUpTowardsB) {
  // 4 devices: the large job (B = 4) wants 1, the small one 1; the large one is then topped
  // up to 2 (3 is not a profiled DoP), leaving 1 device.
  std::vector<ForecastJob> jobs = {job(0, 1, 0, 100, 10), job(1, 0, 0, 100, 10)};
  jobs[0].optimal = 4;
  int free = 4;
  const std::vector<Grant> grants = deal_counts(jobs, {0, 1}, {1, 1}, free);
  ASSERT_EQ(grants.size(), 2u);
  EXPECT_EQ(grants[0].job, 0);
  EXPECT_EQ(grants[0].devices, 2);
  EXPECT_EQ(grants[1].job, 1);
  EXPECT_EQ(grants[1].devices, 1);
  EXPECT_EQ(free, 1);
}

}  // namespace
}  // namespace ditserve::sched
