// Hand-made scenarios with known right answers, one decide() call each.

#include <algorithm>

#include <gtest/gtest.h>

#include "sched/error.h"
#include "sched/policy.h"
#include "sched/state_builder.h"
#include "sched/test_profiles.h"

namespace ditserve::sched {
namespace {

using testing::StateBuilder;
constexpr int kSmall = 0, kLarge = 1;

const Action* action_for(const Decision& d, int request) {
  for (const auto& a : d.actions)
    if (a.request == request) return &a;
  return nullptr;
}

int devices_of(const Decision& d, int request) {
  const Action* a = action_for(d, request);
  return a ? static_cast<int>(a->devices.size()) : 0;
}

TEST(StaticPolicy, FixedGroupsFirstComeFirstServed) {
  StateBuilder b(testing::small_large_profile(), 4);
  const int r0 = b.add(kLarge, 10, 0, kNoDeadline, Phase::kReady);
  const int r1 = b.add(kSmall, 10, 1, kNoDeadline, Phase::kReady);
  const int r2 = b.add(kSmall, 10, 2, kNoDeadline, Phase::kReady);
  const Decision d = make_policy("static:2", {})->decide(b.state());
  ASSERT_EQ(d.actions.size(), 2u);
  EXPECT_EQ(action_for(d, r0)->devices, (std::vector<int>{0, 1}));
  EXPECT_EQ(action_for(d, r0)->steps, 10);  // the whole request at once
  EXPECT_EQ(action_for(d, r1)->devices, (std::vector<int>{2, 3}));
  EXPECT_EQ(action_for(d, r2), nullptr);
}

TEST(StaticPolicy, HeadOfLineWaitsAndDecodeStaysOnTheGroup) {
  StateBuilder b(testing::small_large_profile(), 4);
  b.add(kSmall, 10, 0, kNoDeadline, Phase::kStepping, 10, {0, 1});
  const int dec = b.add(kLarge, 10, 1, kNoDeadline, Phase::kAwaitDecode, 10, {}, {2, 3});
  const int waiting = b.add(kSmall, 10, 2, kNoDeadline, Phase::kReady);
  const Decision d = make_policy("static:2", {})->decide(b.state());
  ASSERT_EQ(d.actions.size(), 1u);
  EXPECT_EQ(action_for(d, dec)->kind, ActionKind::kDecode);
  EXPECT_EQ(action_for(d, dec)->devices, (std::vector<int>{2, 3}));  // VAE DoP 2 profiled
  EXPECT_EQ(action_for(d, waiting), nullptr);
}

TEST(StaticPolicy, RejectsADopTheClusterOrProfileLacks) {
  EXPECT_THROW(make_policy("static:8", {})->check(testing::small_large_profile(), 4), InvalidInput);
  EXPECT_THROW(make_policy("static:3", {})->check(testing::small_large_profile(), 4), InvalidInput);
  EXPECT_NO_THROW(make_policy("static:4", {})->check(testing::small_large_profile(), 4));
}

TEST(StaticBestPolicy, EachShapeAtItsOptimalDop) {
  StateBuilder b(testing::small_large_profile(), 8);
  const int s = b.add(kSmall, 10, 0, kNoDeadline, Phase::kReady);
  const int l = b.add(kLarge, 10, 1, kNoDeadline, Phase::kReady);
  const Decision d = make_policy("static-best", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, s), 1);
  EXPECT_EQ(devices_of(d, l), 4);
}

TEST(DditPolicy, ASmallRequestNeverGetsMoreThanItsOptimalDop) {
  StateBuilder b(testing::small_large_profile(), 4);
  const int s = b.add(kSmall, 10, 0, kNoDeadline, Phase::kReady);
  const Decision d = make_policy("ddit", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, s), 1);  // three devices stay idle: splitting would slow it
  EXPECT_EQ(action_for(d, s)->steps, 1);  // single-step granularity
}

TEST(DditPolicy, HungryRequestTakesWhatIsFreeThenIsPromoted) {
  StateBuilder b(testing::small_large_profile(), 4);
  b.add(kSmall, 10, 0, kNoDeadline, Phase::kStepping, 1, {0});
  b.add(kSmall, 10, 0, kNoDeadline, Phase::kStepping, 1, {1});
  const int l = b.add(kLarge, 10, 1, kNoDeadline, Phase::kReady);
  auto policy = make_policy("ddit", {});
  const Decision d = policy->decide(b.state());
  EXPECT_EQ(action_for(d, l)->devices, (std::vector<int>{2, 3}));  // hungry: 2 < B = 4

  StateBuilder later(testing::small_large_profile(), 4);  // the smalls have finished
  const int l2 = later.add(kLarge, 10, 1, kNoDeadline, Phase::kReady, 3, {}, {2, 3}, true);
  const Decision d2 = policy->decide(later.state());
  EXPECT_EQ(action_for(d2, l2)->devices, (std::vector<int>{0, 1, 2, 3}));  // topped up to B
}

TEST(DditPolicy, MostStarvedHungryRequestIsPromotedFirst) {
  StateBuilder b(testing::small_large_profile(), 4);
  // Both hold one device; two more are free, enough to promote one of them to 2... but
  // promotion goes to B (4) when possible: only the most starved can grow (1 + 2 -> 2).
  auto& st = b.mutable_state();
  const int fresh = b.add(kLarge, 20, 0, kNoDeadline, Phase::kReady, 5, {}, {0}, true);
  const int starved = b.add(kLarge, 20, 1, kNoDeadline, Phase::kReady, 9, {}, {1}, true);
  st.requests[fresh].alloc_steps_done = 4;    // 1 step at DoP 1 since its last allocation
  st.requests[starved].alloc_steps_done = 0;  // 9 steps
  const Decision d = make_policy("ddit", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, starved), 2);
  EXPECT_EQ(devices_of(d, fresh), 2);  // kept its device and got the last one
  EXPECT_EQ(action_for(d, starved)->devices, (std::vector<int>{1, 2}));
}

TEST(DditPolicy, NeverPreemptsARunningRequest) {
  StateBuilder b(testing::small_large_profile(), 4);
  const int l = b.add(kLarge, 10, 0, kNoDeadline, Phase::kReady, 4, {}, {0, 1, 2, 3}, true);
  const int urgent = b.add(kSmall, 10, 1, 1.6, Phase::kReady);
  b.at(1.0);
  const Decision d = make_policy("ddit", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, l), 4);
  EXPECT_EQ(action_for(d, urgent), nullptr);
}

TEST(ElasticPolicy, AStarvingUrgentRequestPreemptsAtAStepBoundary) {
  StateBuilder b(testing::small_large_profile(), 4);
  // The large request has a lax deadline; the small one must start now to make its own.
  const int l = b.add(kLarge, 10, 0, 100.0, Phase::kReady, 4, {}, {0, 1, 2, 3}, true);
  const int urgent = b.add(kSmall, 10, 1, 1.0 + 10 * 0.05 + 0.1 + 0.2, Phase::kReady);
  b.at(1.0);
  const Decision d = make_policy("elastic", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, urgent), 1);
  EXPECT_EQ(devices_of(d, l), 2);  // shrinks to the largest profiled DoP that is left
}

TEST(ElasticPolicy, StaysAtTheOptimalDopWhenSplittingFurtherIsNotFaster) {
  StateBuilder b(testing::small_large_profile(), 8);
  const int s = b.add(kSmall, 10, 0, kNoDeadline, Phase::kReady);
  const int l = b.add(kLarge, 10, 0, kNoDeadline, Phase::kReady);
  const Decision d = make_policy("elastic", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, s), 1);
  EXPECT_EQ(devices_of(d, l), 4);  // 3 devices stay idle: no step gets faster past B here
}

TEST(ElasticPolicy, GivesTheFewestDevicesThatMeetTheDeadlineWhenDevicesAreShort) {
  StateBuilder b(testing::small_large_profile(), 4);
  // Two large requests, 10 steps left each. The first can make its deadline on 2 devices
  // (10 x 0.52 + 0.4 + 0.001 < 6); the second needs 4 but only 2 remain; it gets them.
  const int a = b.add(kLarge, 10, 0, 6.0, Phase::kReady);
  const int c = b.add(kLarge, 10, 0, 3.2, Phase::kReady);
  const Decision d = make_policy("elastic", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, c), 4);  // least slack first: it needs all 4 to make 3.2 s
  EXPECT_EQ(devices_of(d, a), 0);
  StateBuilder b2(testing::small_large_profile(), 4);
  const int a2 = b2.add(kLarge, 10, 0, 6.0, Phase::kReady);
  const int c2 = b2.add(kLarge, 10, 0, 6.5, Phase::kReady);
  const Decision d2 = make_policy("elastic", {})->decide(b2.state());
  EXPECT_EQ(devices_of(d2, a2), 2);  // both fit on 2 devices each: nobody is starved
  EXPECT_EQ(devices_of(d2, c2), 2);
}

TEST(ElasticPolicy, ALateRequestGoesFirstAtItsOptimalDop) {
  StateBuilder b(testing::small_large_profile(), 4);
  const int on_time = b.add(kLarge, 10, 5, 100.0, Phase::kReady);
  const int late = b.add(kLarge, 10, 0, 1.0, Phase::kReady);
  b.at(5.0);
  const Decision d = make_policy("elastic", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, late), 4);
  EXPECT_EQ(devices_of(d, on_time), 0);
}

TEST(TetriServePolicy, DecidesOnlyAtRoundStarts) {
  StateBuilder b(testing::small_large_profile(), 4);
  const int r = b.add(kSmall, 10, 0, kNoDeadline, Phase::kReady);
  auto policy = make_policy("tetriserve:500", {});
  const Decision first = policy->decide(b.state());
  ASSERT_NE(action_for(first, r), nullptr);
  EXPECT_EQ(action_for(first, r)->steps, 10);  // min(steps left, 500 ms / 50 ms)
  EXPECT_DOUBLE_EQ(first.wake_at, 0.5);
  StateBuilder mid(testing::small_large_profile(), 4);
  mid.add(kSmall, 10, 0, kNoDeadline, Phase::kReady);
  mid.at(0.2);
  const Decision between = policy->decide(mid.state());
  EXPECT_TRUE(between.actions.empty());
  EXPECT_DOUBLE_EQ(between.wake_at, 0.5);
}

TEST(TetriServePolicy, PacksTheRoundToKeepTheMostRequestsOnTrack) {
  StateBuilder b(testing::small_large_profile(), 4);
  // tight: 10 steps by t = 3.4 needs DoP 4 (10 x 0.27 + 0.4), and stays on track after a
  // 1 s round (1 + 7 x 0.27 + 0.4 = 3.29). lax: fine on 1 device later.
  const int tight = b.add(kLarge, 10, 0, 3.4, Phase::kReady);
  const int lax = b.add(kLarge, 10, 0, 60.0, Phase::kReady);
  const Decision d = make_policy("tetriserve:1000", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, tight), 4);
  EXPECT_EQ(devices_of(d, lax), 0);
  EXPECT_EQ(action_for(d, tight)->steps, 3);  // floor(1 s / 0.27 s)
}

TEST(TetriServePolicy, ARequestCertainToBeLateYieldsToOneOnTrack) {
  StateBuilder b(testing::small_large_profile(), 4);
  const int late = b.add(kLarge, 10, 0, 0.5, Phase::kReady);
  const int ok = b.add(kLarge, 10, 0, 3.4, Phase::kReady);
  const Decision d = make_policy("tetriserve:1000", {})->decide(b.state());
  EXPECT_EQ(devices_of(d, ok), 4);
  EXPECT_EQ(devices_of(d, late), 0);
}

}  // namespace
}  // namespace ditserve::sched
