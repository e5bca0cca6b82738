// elastic's rules on hand-made scenarios (docs/SCHEDULING.md): work-conserving growth past
// B only while nothing waits, largest projected latency first among requests that can wait
// (an old request is not starved), urgent requests first (counting another request's long
// step in the urgency of a short one), no shrinking of a running request without need, and
// rollout selection between its own order and DDiT's (sched/lookahead.h) by the forecast.

#include <gtest/gtest.h>

#include "sched/policy.h"
#include "sched/state_builder.h"
#include "sched/test_profiles.h"

namespace ditserve::sched {
namespace {

using testing::StateBuilder;
constexpr int kSmall = 0, kLarge = 1, kMid = 2;

// small: B = 1, slower when split. large: B = 4. mid: B = 1 (doubling gains 30% < 40%) but
// faster on 2 and 4 devices, so only the work-conserving pass splits it.
Profile profile() {
  Profile p = testing::small_large_profile();
  p.shapes.push_back(testing::make_shape("mid", {{1, 100}, {2, 70}, {4, 50}}, 100));
  return p;
}

int devices_of(const Decision& d, int request) {
  for (const auto& a : d.actions)
    if (a.request == request) return static_cast<int>(a.devices.size());
  return 0;
}

Decision decide(const StateBuilder& b) { return make_policy("elastic", {})->decide(b.state()); }

TEST(ElasticPolicy, GrowsPastTheOptimalDopOnlyWhenNothingWaitsAndOnlyIfFaster) {
  StateBuilder b(profile(), 4);
  const int mid = b.add(kMid, 10, 0, kNoDeadline, Phase::kReady);
  EXPECT_EQ(profile().shapes[kMid].optimal_dop(kDefaultMinGain, 4), 1);
  EXPECT_EQ(devices_of(decide(b), mid), 4);  // the fastest DoP: devices would idle otherwise

  StateBuilder b2(profile(), 4);
  const int small = b2.add(kSmall, 10, 0, kNoDeadline, Phase::kReady);
  EXPECT_EQ(devices_of(decide(b2), small), 1);  // splitting would slow it down
}

TEST(ElasticPolicy, GrowthLeavesDevicesForAHungryRunningRequest) {
  StateBuilder b(profile(), 4);
  // The large request runs on 2 devices (B = 4): the 2 free ones are its at its boundary.
  b.add(kLarge, 10, 0, kNoDeadline, Phase::kStepping, 3, {0, 1}, {0, 1});
  const int mid = b.add(kMid, 10, 0, kNoDeadline, Phase::kReady);
  EXPECT_EQ(devices_of(decide(b), mid), 1);
}

TEST(ElasticPolicy, AGrownRequestShrinksBackWhenWorkArrives) {
  StateBuilder b(profile(), 4);
  const int mid = b.add(kMid, 10, 0, kNoDeadline, Phase::kReady, 3, {}, {0, 1, 2, 3}, true);
  const int small = b.add(kSmall, 10, 1, kNoDeadline, Phase::kReady);
  b.at(1.0);
  const Decision d = decide(b);
  EXPECT_EQ(devices_of(d, small), 1);
  // Back to B, then grown again with what is left: 2 (4 would need 3 more devices).
  EXPECT_EQ(devices_of(d, mid), 2);
}

TEST(ElasticPolicy, AnOldLargeRequestIsNotStarvedByNewerSmallOnes) {
  StateBuilder b(profile(), 2);
  // Every request can wait (slack well above 40% of its deadline span); least-slack-first
  // would serve the two small ones and leave the large one waiting. (DDiT's rule would give
  // the large one both devices for 5.6 s, and s1 would miss its deadline at 9 s: the
  // rollout keeps elastic's order.)
  const int large = b.add(kLarge, 10, 0, 100.0, Phase::kReady);
  const int s1 = b.add(kSmall, 10, 1, 8.5, Phase::kReady);
  const int s2 = b.add(kSmall, 10, 2, 12.0, Phase::kReady);
  b.at(3.0);
  const Decision d = decide(b);
  EXPECT_EQ(devices_of(d, large), 1);  // the fewest devices that meet its deadline
  EXPECT_EQ(devices_of(d, s1), 1);
  EXPECT_EQ(devices_of(d, s2), 0);
}

TEST(ElasticPolicy, AmongRequestsThatCanWaitTheLargestProjectedLatencyGoesFirst) {
  // None is urgent. The small one is older, but would finish 0.6 s after it starts; the
  // large one, 1 s younger, needs 10.4 s (B = 1 on one device: 10 x 1 s + 0.4 s decode): it
  // would be the tail, so it goes first (oldest-first would serve the small one). The third
  // (0.6 s of work, 4.9 s of slack, 6 s span) can wait too, but not behind both others:
  // DDiT's first-come-first-served rule would make it miss, so the rollout keeps elastic's.
  // (Device 1 runs a younger large request until 3 s.)
  StateBuilder b(profile(), 2);
  const int small = b.add(kSmall, 10, 0, 100.0, Phase::kReady);
  const int large = b.add(kLarge, 10, 1, 200.0, Phase::kReady);
  const int third = b.add(kSmall, 10, 1.5, 7.5, Phase::kReady);
  const int other = b.add(kLarge, 10, 1.8, 1000.0, Phase::kStepping, 1, {1}, {1});
  b.mutable_state().requests[other].expected_end = 3.0;
  b.at(2.0);
  Decision d = decide(b);
  EXPECT_EQ(devices_of(d, large), 1);
  EXPECT_EQ(devices_of(d, small), 0);
  EXPECT_EQ(devices_of(d, third), 0);

  // Not largest-shape-first: a small request that has waited longer than the large one
  // still needs (12.5 + 0.6 s against 0.5 + 10.4 s) goes first.
  StateBuilder b2(profile(), 1);
  const int small2 = b2.add(kSmall, 10, 0, 100.0, Phase::kReady);
  const int large2 = b2.add(kLarge, 10, 12, 200.0, Phase::kReady);
  b2.at(12.5);
  d = decide(b2);
  EXPECT_EQ(devices_of(d, small2), 1);
  EXPECT_EQ(devices_of(d, large2), 0);
}

TEST(ElasticPolicy, AnUrgentRequestGoesBeforeAnOlderOneThatCanWait) {
  StateBuilder b(profile(), 1);
  const int large = b.add(kLarge, 10, 0, 100.0, Phase::kReady);
  // 10 x 50 ms + 100 ms decode (+ 1 ms move): slack 0.3 s of a 0.9 s span, below 40%.
  const int small = b.add(kSmall, 10, 1, 1.9, Phase::kReady);
  b.at(1.0);
  const Decision d = decide(b);
  EXPECT_EQ(devices_of(d, small), 1);
  EXPECT_EQ(devices_of(d, large), 0);
}

TEST(ElasticPolicy, AShortRequestCountsALongStepOfAnotherInItsUrgency) {
  // A Wan-14B-like shape whose one-device step takes 40 s (B = 1 on one device).
  Profile p = profile();
  p.shapes.push_back(testing::make_shape("huge", {{1, 40000}, {2, 20500}, {4, 10500}}, 400));
  const int kHuge = 3;
  // The small request (0.601 s of work) has a 90 s span and 38 s of slack: above 40% of
  // its span, so without the rule it could wait, and the huge request, whose projected
  // latency is far larger, would take the device for a 40 s step and make it miss.
  // The 40 s step is over a fifth of its span, so it is urgent: 38 < 0.4 x 90 + 40.
  StateBuilder b(p, 1);
  const int huge = b.add(kHuge, 10, 0, 1000.0, Phase::kReady);
  const int small = b.add(kSmall, 10, 1, 91.0, Phase::kReady);
  b.at(91.0 - 0.601 - 38.0);
  Decision d = make_policy("elastic", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, small), 1);
  EXPECT_EQ(devices_of(d, huge), 0);

  // A span of 210 s is long next to the step (40 s <= 0.2 x 210): 90 s of slack is above
  // 40% of it, so the request can wait and the huge one goes first.
  StateBuilder b2(p, 1);
  const int huge2 = b2.add(kHuge, 10, 0, 1000.0, Phase::kReady);
  const int small2 = b2.add(kSmall, 10, 1, 211.0, Phase::kReady);
  b2.at(211.0 - 0.601 - 90.0);
  d = make_policy("elastic", {})->decide(b2.state());
  EXPECT_EQ(devices_of(d, huge2), 1);
  EXPECT_EQ(devices_of(d, small2), 0);
}

TEST(ElasticPolicy, ARunningRequestThatIsNotUrgentKeepsItsDop) {
  // Projected latency at B = 4: running 1 + 15 x 0.27 + 0.4 = 5.45 s, newer 2 x 0.27 + 0.4 s.
  StateBuilder b(profile(), 4);
  const int running = b.add(kLarge, 20, 0, 100.0, Phase::kReady, 5, {}, {0, 1, 2, 3}, true);
  const int newer = b.add(kLarge, 2, 1, 100.0, Phase::kReady);
  b.at(1.0);
  Decision d = decide(b);
  EXPECT_EQ(devices_of(d, running), 4);
  EXPECT_EQ(devices_of(d, newer), 0);

  // ... unless a waiting request would finish later relative to its arrival (the tail):
  // 20 steps left, 5.8 s. It goes first with the fewest devices that meet its deadline
  // (1), the running one keeps what fits of its 4 (2), and the last one tops it up (2).
  StateBuilder b2(profile(), 4);
  const int running2 = b2.add(kLarge, 20, 0, 100.0, Phase::kReady, 5, {}, {0, 1, 2, 3}, true);
  const int tail = b2.add(kLarge, 20, 1, 100.0, Phase::kReady);
  b2.at(1.0);
  d = decide(b2);
  EXPECT_EQ(devices_of(d, tail), 2);
  EXPECT_EQ(devices_of(d, running2), 2);
}

TEST(ElasticPolicy, TheRolloutDealsByDditsRuleWhereItsForecastIsBetter) {
  // Elastic's order serves the large request first (projected 11.4 s against 2.6 s); DDiT's
  // serves the older small one. Run forward step by step, both end with a largest latency
  // of 12.0 s (under elastic's order the small one overtakes once it has waited 10.8 s),
  // no deadline is missed, and first come first served has the smaller mean (7.3 s against
  // 11.8 s): DDiT's rule deals now.
  StateBuilder b(profile(), 1);
  const int small = b.add(kSmall, 10, 0, 100.0, Phase::kReady);
  const int large = b.add(kLarge, 10, 1, 200.0, Phase::kReady);
  b.at(2.0);
  const Decision d = decide(b);
  EXPECT_EQ(devices_of(d, small), 1);
  EXPECT_EQ(devices_of(d, large), 0);
}

TEST(ElasticPolicy, NoRolloutOnceAStepLongerThanTwiceTheShortestSpanWasSeen) {
  // The scenario above on device 0, while device 1 runs the last step of a request with a
  // 10 s deadline span (done at 11.7 s) and device 2 another request's last step until
  // 12 s. When that request's shape has 1 s steps on one device, the rollout chooses as
  // above (no miss; largest latency 12.0 s under DDiT's order, 13.0 s under elastic's).
  // When its one-device step takes 100 s, such a step (arriving at any time) could hold a
  // device longer than twice the 10 s span, which a forecast without arrivals cannot see
  // coming: elastic's order deals, and keeps dealing once such a request has been seen.
  Profile p = profile();
  p.shapes.push_back(testing::make_shape("huge", {{1, 100000}, {2, 10100}}, 400));
  const int kHuge = 3;
  auto decide_next_to = [&](Policy& policy, int running_shape, int& small, int& large) {
    StateBuilder b(p, 3);
    small = b.add(kSmall, 10, 0, 1000.0, Phase::kReady);
    large = b.add(kLarge, 10, 1, 1000.0, Phase::kReady);
    const int short_span = b.add(kLarge, 10, 1.9, 11.9, Phase::kStepping, 10, {1}, {1});
    const int running = b.add(running_shape, 10, 1.9, 10000.0, Phase::kStepping, 10, {2}, {2});
    b.mutable_state().requests[short_span].expected_end = 11.3;
    b.mutable_state().requests[running].expected_end = 12.0;
    b.at(2.0);
    return policy.decide(b.state());
  };
  int small = -1, large = -1;
  Decision d = decide_next_to(*make_policy("elastic", {}), kLarge, small, large);
  EXPECT_EQ(devices_of(d, small), 1);
  EXPECT_EQ(devices_of(d, large), 0);
  const auto seen_huge = make_policy("elastic", {});
  d = decide_next_to(*seen_huge, kHuge, small, large);
  EXPECT_EQ(devices_of(d, large), 1);
  EXPECT_EQ(devices_of(d, small), 0);
  d = decide_next_to(*seen_huge, kLarge, small, large);  // the same scenario as the first
  EXPECT_EQ(devices_of(d, large), 1);
  EXPECT_EQ(devices_of(d, small), 0);
}

TEST(ElasticPolicy, NoRolloutWhereElasticsOwnOrderForecastsAMiss) {
  // The scenario of TheRolloutDealsByDditsRuleWhereItsForecastIsBetter plus a request that
  // can no longer meet its deadline (0.6 s of work, 0.5 s left): it goes first on one of
  // two devices under both orders, and misses in both forecasts. With a miss forecast the
  // rollout does not choose (DDiT's order would win on the tail alone, which in overload
  // costs SLO attainment): elastic's order gives the other device to the large request.
  StateBuilder b(profile(), 2);
  const int small = b.add(kSmall, 10, 0, 100.0, Phase::kReady);
  const int late = b.add(kSmall, 10, 0.5, 2.5, Phase::kReady);
  const int large = b.add(kLarge, 10, 1, 200.0, Phase::kReady);
  b.at(2.0);
  const Decision d = decide(b);
  EXPECT_EQ(devices_of(d, late), 1);
  EXPECT_EQ(devices_of(d, large), 1);
  EXPECT_EQ(devices_of(d, small), 0);
}

TEST(ElasticPolicy, NoRolloutAboveSixtyFourRequestsInTheForecast) {
  // The scenario of TheRolloutDealsByDditsRuleWhereItsForecastIsBetter on device 0, while
  // every other device runs a large request's last step until 12 s (latency 10.5 s each).
  // With 62 of them the forecast holds 64 requests and the rollout chooses as there; with
  // 63 it would hold 65, and a rollout costs O(J^2 log J): elastic's order deals.
  auto decide_with_running = [](int running, int& small, int& large) {
    StateBuilder b(profile(), 1 + running);
    small = b.add(kSmall, 10, 0, 100.0, Phase::kReady);
    large = b.add(kLarge, 10, 1, 200.0, Phase::kReady);
    for (int d = 1; d <= running; ++d) {
      const int r = b.add(kLarge, 10, 1.9, 10000.0, Phase::kStepping, 10, {d}, {d});
      b.mutable_state().requests[r].expected_end = 12.0;
    }
    b.at(2.0);
    return make_policy("elastic", {})->decide(b.state());
  };
  int small = -1, large = -1;
  Decision d = decide_with_running(62, small, large);
  EXPECT_EQ(devices_of(d, small), 1);
  EXPECT_EQ(devices_of(d, large), 0);
  d = decide_with_running(63, small, large);
  EXPECT_EQ(devices_of(d, large), 1);
  EXPECT_EQ(devices_of(d, small), 0);
}

}  // namespace
}  // namespace ditserve::sched
