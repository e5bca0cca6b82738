// elastic's rules on hand-made scenarios (docs/SCHEDULING.md): work-conserving growth past
// B only while nothing waits, largest projected latency first among requests that can wait
// (an old request is not starved), urgent requests first (counting another request's long
// step in the urgency of a short one), and no shrinking of a running request without need.

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
  // would serve the two small ones and leave the large one waiting.
  const int large = b.add(kLarge, 10, 0, 100.0, Phase::kReady);
  const int s1 = b.add(kSmall, 10, 1, 11.0, Phase::kReady);
  const int s2 = b.add(kSmall, 10, 2, 12.0, Phase::kReady);
  b.at(3.0);
  const Decision d = decide(b);
  EXPECT_EQ(devices_of(d, large), 1);  // the fewest devices that meet its deadline
  EXPECT_EQ(devices_of(d, s1), 1);
  EXPECT_EQ(devices_of(d, s2), 0);
}

TEST(ElasticPolicy, AmongRequestsThatCanWaitTheLargestProjectedLatencyGoesFirst) {
  // Both far from urgent. The small one is older, but would finish 0.6 s after it starts;
  // the large one, 1 s younger, needs 10.4 s (B = 1 on one device: 10 x 1 s + 0.4 s
  // decode): it would be the tail, so it goes first (oldest-first would serve the small one).
  StateBuilder b(profile(), 1);
  const int small = b.add(kSmall, 10, 0, 100.0, Phase::kReady);
  const int large = b.add(kLarge, 10, 1, 200.0, Phase::kReady);
  b.at(2.0);
  Decision d = decide(b);
  EXPECT_EQ(devices_of(d, large), 1);
  EXPECT_EQ(devices_of(d, small), 0);

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

}  // namespace
}  // namespace ditserve::sched
