// Devices out of service and back: once devices are lost for good, a request the policy
// can never serve on the devices in service is rejected with the cause; one it can still
// serve waits, as every request does while a lost device may come back; a device added
// back (or a new one) is used again (docs/SCHEDULING.md, "Devices lost for good").

#include <string>

#include <gtest/gtest.h>

#include "sched/scheduler.h"
#include "sched/test_profiles.h"

namespace ditserve::sched {
namespace {

constexpr int kSmall = 0, kLarge = 1;

Event arrival(double t, int shape, int steps) {
  Event e;
  e.kind = EventKind::kArrival;
  e.time = t;
  e.spec.shape = shape;
  e.spec.steps = steps;
  return e;
}

Event event(EventKind kind, double t, int request = -1, int device = -1) {
  Event e;
  e.kind = kind;
  e.time = t;
  e.request = request;
  e.device = device;
  return e;
}

Event lost(double t, int device, bool for_good = true) {
  Event e = event(EventKind::kDeviceLost, t, -1, device);
  e.for_good = for_good;
  return e;
}

const Action* find(const std::vector<Action>& acts, ActionKind kind, int request) {
  for (const Action& a : acts)
    if (a.kind == kind && a.request == request) return &a;
  return nullptr;
}

// Arrival, encode, and the first schedule() after it; returns that schedule's actions.
std::vector<Action> encoded(Scheduler& s, int request, double t) {
  s.schedule();
  s.on_event(event(EventKind::kEncodeDone, t, request));
  return s.schedule();
}

TEST(DeviceLoss, StaticRejectsWhatItCanNeverRunWithTheCause) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("static:4", {}));
  const int running = s.on_event(arrival(0, kSmall, 5));
  ASSERT_NE(find(encoded(s, running, 0.01), ActionKind::kStep, running), nullptr);
  const int queued = s.on_event(arrival(0.02, kSmall, 5));
  s.on_event(lost(0.1, 3));  // aborts the running request's step
  auto acts = s.schedule();
  const Action* rejected = find(acts, ActionKind::kReject, running);
  ASSERT_NE(rejected, nullptr);
  EXPECT_EQ(rejected->reason, "policy static:4 needs 4 devices, 3 in service");
  EXPECT_EQ(s.state().requests[running].phase, Phase::kRejected);
  EXPECT_EQ(s.state().requests[running].reject_reason, rejected->reason);
  s.check_invariants();
  // The one still encoding is rejected as soon as it reaches the devices.
  ASSERT_NE(find(acts, ActionKind::kEncode, queued), nullptr);
  s.on_event(event(EventKind::kEncodeDone, 0.2, queued));
  acts = s.schedule();
  ASSERT_NE(find(acts, ActionKind::kReject, queued), nullptr);
  EXPECT_EQ(s.state().requests[queued].reject_reason, "policy static:4 needs 4 devices, 3 in service");
  s.check_invariants();
}

TEST(DeviceLoss, StaticWaitsForAWholeGroupAndRejectsWhenNoneIsLeft) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("static:2", {}));
  const int first = s.on_event(arrival(0, kSmall, 5));
  ASSERT_EQ(find(encoded(s, first, 0.01), ActionKind::kStep, first)->devices, (std::vector<int>{0, 1}));
  const int second = s.on_event(arrival(0.01, kSmall, 5));
  s.on_event(lost(0.02, 1));  // group {0, 1} is broken
  auto acts = s.schedule();
  const Action* moved = find(acts, ActionKind::kStep, first);  // its aborted step runs again
  ASSERT_NE(moved, nullptr);
  EXPECT_EQ(moved->devices, (std::vector<int>{2, 3}));  // on the whole group left
  s.on_event(event(EventKind::kEncodeDone, 0.03, second));
  acts = s.schedule();
  EXPECT_TRUE(acts.empty());  // {2, 3} is busy: the second waits, it is not rejected
  EXPECT_EQ(s.state().requests[second].phase, Phase::kReady);
  s.check_invariants();
  // Losing a device of the other group leaves no whole group: both are rejected.
  s.on_event(lost(0.1, 2));
  s.schedule();
  for (const int r : {first, second}) {
    EXPECT_EQ(s.state().requests[r].phase, Phase::kRejected);
    EXPECT_EQ(s.state().requests[r].reject_reason,
              "policy static:2 needs a group of 2 devices with all of them in service, none is left "
              "(2 devices in service)");
  }
  s.check_invariants();
}

TEST(DeviceLoss, StaticBestNeedsTheOptimalDop) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("static-best", {}));
  const int small = s.on_event(arrival(0, kSmall, 5));
  const int large = s.on_event(arrival(0, kLarge, 5));
  s.on_event(lost(0, 0));
  s.schedule();
  s.on_event(event(EventKind::kEncodeDone, 0.01, small));
  s.schedule();
  s.on_event(event(EventKind::kEncodeDone, 0.02, large));
  s.schedule();
  EXPECT_EQ(s.state().requests[large].reject_reason, "policy static-best needs 4 devices, 3 in service");
  EXPECT_NE(s.state().requests[small].phase, Phase::kRejected);  // B = 1 still fits
  s.check_invariants();
}

TEST(DeviceLoss, ElasticPoliciesServeOnWhatIsLeftUntilNothingIs) {
  for (const std::string policy : {"ddit", "tetriserve", "elastic"}) {
    Scheduler s(testing::small_large_profile(), {4, 1}, make_policy(policy, {}));
    const int r = s.on_event(arrival(0, kLarge, 5));
    for (int d = 0; d < 3; ++d) s.on_event(lost(0, d));
    const auto acts = encoded(s, r, 0.01);
    const Action* step = find(acts, ActionKind::kStep, r);
    ASSERT_NE(step, nullptr) << policy;
    EXPECT_EQ(step->devices, std::vector<int>{3}) << policy;
    s.on_event(lost(0.02, 3));
    s.schedule();
    EXPECT_EQ(s.state().requests[r].reject_reason, "policy " + policy + " needs 1 device, 0 in service");
    s.check_invariants();
  }
}

TEST(DeviceLoss, WhileALostDeviceMayComeBackRequestsWaitForIt) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("static:4", {}));
  const int r = s.on_event(arrival(0, kSmall, 5));
  s.on_event(lost(0, 3, /*for_good=*/false));
  s.on_event(lost(0, 2, /*for_good=*/true));
  EXPECT_TRUE(encoded(s, r, 0.01).empty());  // waits: device 3 may return
  EXPECT_EQ(s.state().requests[r].phase, Phase::kReady);
  s.on_event(event(EventKind::kDeviceAdded, 5, -1, 3));  // back, but 2 is gone for good
  s.schedule();
  EXPECT_EQ(s.state().requests[r].reject_reason, "policy static:4 needs 4 devices, 3 in service");
  s.check_invariants();
}

TEST(DeviceLoss, ADeviceBackBeforeTheDecisionRejectsNothing) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("static:4", {}));
  const int r = s.on_event(arrival(0, kSmall, 5));
  s.on_event(lost(0, 3));
  s.schedule();
  s.on_event(event(EventKind::kEncodeDone, 0.01, r));
  s.on_event(event(EventKind::kDeviceAdded, 0.01, -1, 3));
  const auto acts = s.schedule();
  const Action* step = find(acts, ActionKind::kStep, r);
  ASSERT_NE(step, nullptr);
  EXPECT_EQ(step->devices, (std::vector<int>{0, 1, 2, 3}));
  s.check_invariants();
}

TEST(DeviceLoss, ADeviceAddedBackIsUsedAgain) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("ddit", {}));
  const int r = s.on_event(arrival(0, kLarge, 5));  // B = 4
  s.on_event(lost(0, 3));
  auto acts = encoded(s, r, 0.01);
  ASSERT_NE(find(acts, ActionKind::kStep, r), nullptr);
  EXPECT_EQ(find(acts, ActionKind::kStep, r)->devices, (std::vector<int>{0, 1}));  // 3 left: DoP 2
  s.on_event(event(EventKind::kDeviceAdded, 0.3, -1, 3));
  s.on_event(event(EventKind::kStepsDone, 0.55, r));
  acts = s.schedule();
  ASSERT_NE(find(acts, ActionKind::kStep, r), nullptr);
  EXPECT_EQ(find(acts, ActionKind::kStep, r)->devices, (std::vector<int>{0, 1, 2, 3}));  // promoted to B
  s.check_invariants();
}

TEST(DeviceLoss, ADeviceAddedPastTheClusterExtendsIt) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("elastic", {}));
  const int r = s.on_event(arrival(0, kLarge, 5));
  s.on_event(lost(0, 0));
  s.on_event(event(EventKind::kDeviceAdded, 0, -1, 4));
  EXPECT_EQ(s.state().alive.size(), 5u);
  EXPECT_EQ(s.state().alive_count(), 4);
  const auto acts = encoded(s, r, 0.01);
  ASSERT_NE(find(acts, ActionKind::kStep, r), nullptr);
  EXPECT_EQ(find(acts, ActionKind::kStep, r)->devices, (std::vector<int>{1, 2, 3, 4}));
  s.check_invariants();
}

}  // namespace
}  // namespace ditserve::sched
