// RequestSpec::priority: among requests waiting for devices, a higher priority is served
// first under every policy; equal priorities keep each policy's own order
// (docs/SCHEDULING.md, "Priority").

#include <string>

#include <gtest/gtest.h>

#include "sched/policy.h"
#include "sched/scheduler.h"
#include "sched/state_builder.h"
#include "sched/test_profiles.h"

namespace ditserve::sched {
namespace {

using testing::StateBuilder;
constexpr int kSmall = 0;

const Action* action_for(const Decision& d, int request) {
  for (const auto& a : d.actions)
    if (a.request == request) return &a;
  return nullptr;
}

const char* const kPolicies[] = {"static:1", "static-best", "ddit", "tetriserve", "elastic"};

// Four devices, three of them busy; two requests of the same shape wait, `first` arrived
// before `second`. Returns which of them the policy gives the free device 3.
int winner(const std::string& policy, int first_priority, int second_priority) {
  StateBuilder b(testing::small_large_profile(), 4);
  for (int d = 0; d < 3; ++d) b.add(kSmall, 10, 0, kNoDeadline, Phase::kStepping, 1, {d});
  const int first = b.add(kSmall, 10, 1, kNoDeadline, Phase::kReady);
  const int second = b.add(kSmall, 10, 2, kNoDeadline, Phase::kReady);
  b.prioritise(first, first_priority);
  b.prioritise(second, second_priority);
  b.at(3);
  const Decision d = make_policy(policy, {})->decide(b.state());
  const Action* a = action_for(d, first);
  const Action* c = action_for(d, second);
  EXPECT_TRUE((a == nullptr) != (c == nullptr)) << policy << ": exactly one gets the device";
  const Action* got = a ? a : c;
  if (got != nullptr) {
    EXPECT_EQ(got->devices, std::vector<int>{3}) << policy;
  }
  return a ? 0 : 1;
}

TEST(Priority, TheHigherOneGetsTheFreeDeviceUnderEveryPolicy) {
  for (const char* policy : kPolicies) {
    EXPECT_EQ(winner(policy, 0, 0), 0) << policy << ": equal priorities keep arrival order";
    EXPECT_EQ(winner(policy, 0, 3), 1) << policy;
    EXPECT_EQ(winner(policy, -1, 0), 1) << policy << ": negative is below the default";
    EXPECT_EQ(winner(policy, 2, 1), 0) << policy;
  }
}

// A request that just ran keeps its group under ddit (no preemption); elastic re-deals at
// every boundary, so the higher priority takes the device.
TEST(Priority, OnlyAPolicyThatPreemptsGivesARunningRequestsDevicesAway) {
  for (const std::string policy : {"ddit", "elastic"}) {
    StateBuilder b(testing::small_large_profile(), 1);
    const int running = b.add(kSmall, 10, 0, kNoDeadline, Phase::kReady, 5, {}, {0}, true);
    const int waiting = b.add(kSmall, 10, 0.9, kNoDeadline, Phase::kReady);
    b.at(1);
    const Decision same = make_policy(policy, {})->decide(b.state());
    ASSERT_NE(action_for(same, running), nullptr) << policy;  // equal priorities: it keeps it
    EXPECT_EQ(action_for(same, waiting), nullptr) << policy;
    b.prioritise(waiting, 1);
    const Decision d = make_policy(policy, {})->decide(b.state());
    if (policy == "ddit") {
      ASSERT_NE(action_for(d, running), nullptr);
      EXPECT_EQ(action_for(d, waiting), nullptr);
    } else {
      EXPECT_EQ(action_for(d, running), nullptr);
      ASSERT_NE(action_for(d, waiting), nullptr);
      EXPECT_EQ(action_for(d, waiting)->devices, std::vector<int>{0});
    }
  }
}

// TetriServe packs priority tiers in turn: a lower tier gets only what the higher left,
// even where the knapsack would have kept more requests on track without the tiers.
TEST(Priority, TetriServePacksTheHigherTierFirst) {
  StateBuilder b(testing::small_large_profile(), 4);
  // "large" meets its deadline only on 4 devices (0.05 + 10 x 0.27 + 0.4 decode = 3.15 s)
  // and only if it starts in this round; the two small ones need one device each.
  const int big = b.add(1, 10, 0, 3.3, Phase::kReady);
  const int s1 = b.add(kSmall, 10, 0, kNoDeadline, Phase::kReady);
  const int s2 = b.add(kSmall, 10, 0, kNoDeadline, Phase::kReady);
  b.at(0.05);
  const Decision plain = make_policy("tetriserve", {})->decide(b.state());
  ASSERT_NE(action_for(plain, big), nullptr);  // earliest deadline, worth the 4 devices
  EXPECT_EQ(action_for(plain, s1), nullptr);
  b.prioritise(s1, 1);
  b.prioritise(s2, 1);
  const Decision d = make_policy("tetriserve", {})->decide(b.state());
  ASSERT_NE(action_for(d, s1), nullptr);
  ASSERT_NE(action_for(d, s2), nullptr);
  EXPECT_EQ(action_for(d, big), nullptr);  // 2 devices left: too few for its deadline at DoP 4
}

Event arrival(double t, int shape, int steps, int priority) {
  Event e;
  e.kind = EventKind::kArrival;
  e.time = t;
  e.spec.shape = shape;
  e.spec.steps = steps;
  e.spec.priority = priority;
  return e;
}

TEST(Priority, TheEncoderTakesTheHighestFirstThenArrivalOrder) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("ddit", {}));
  const int a = s.on_event(arrival(0, kSmall, 3, 0));
  const int b = s.on_event(arrival(0, kSmall, 3, 0));
  const int c = s.on_event(arrival(0, kSmall, 3, 4));
  std::vector<int> order;
  for (double t = 0.01; order.size() < 3; t += 0.01) {
    for (const Action& act : s.schedule()) {
      if (act.kind != ActionKind::kEncode) continue;
      order.push_back(act.request);
      Event done;
      done.kind = EventKind::kEncodeDone;
      done.time = t;
      done.request = act.request;
      s.on_event(done);
    }
    s.check_invariants();
    ASSERT_LT(t, 1.0);
  }
  EXPECT_EQ(order, (std::vector<int>{c, a, b}));
}

}  // namespace
}  // namespace ditserve::sched
