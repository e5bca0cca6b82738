#include "sched/scheduler.h"

#include <set>

#include <gtest/gtest.h>

#include "sched/error.h"
#include "sched/test_profiles.h"

namespace ditserve::sched {
namespace {

Event arrival(double t, int shape, int steps, double deadline = kNoDeadline) {
  Event e;
  e.kind = EventKind::kArrival;
  e.time = t;
  e.spec = {7, shape, steps, t, deadline};
  return e;
}

Event done(EventKind kind, double t, int request) {
  Event e;
  e.kind = kind;
  e.time = t;
  e.request = request;
  return e;
}

TEST(Scheduler, RecordsWhenEachActionInFlightShouldEnd) {
  // What a policy that looks ahead reads (sched/lookahead.h): start + Action::expected_s.
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("ddit", {}));
  const int r = s.on_event(arrival(1.0, 1, 2));
  s.schedule();
  EXPECT_DOUBLE_EQ(s.state().requests[r].expected_end, 1.0 + 0.010);  // the encode
  s.on_event(done(EventKind::kEncodeDone, 1.01, r));
  auto acts = s.schedule();
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_DOUBLE_EQ(s.state().requests[r].expected_end, 1.01 + acts[0].expected_s);  // a step on 4: 0.27 s
  EXPECT_DOUBLE_EQ(acts[0].expected_s, 0.27);
  s.on_event(done(EventKind::kStepsDone, 1.28, r));
  s.schedule();
  s.on_event(done(EventKind::kStepsDone, 1.55, r));
  acts = s.schedule();
  ASSERT_EQ(acts.size(), 1u);
  ASSERT_EQ(acts[0].kind, ActionKind::kDecode);
  EXPECT_DOUBLE_EQ(s.state().requests[r].expected_end, 1.55 + 0.4);
}

TEST(Scheduler, DrivesOneRequestThroughEncodeStepsAndDecode) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("ddit", {}));
  const int r = s.on_event(arrival(0, 1, 2));
  auto acts = s.schedule();
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kEncode);
  EXPECT_EQ(acts[0].devices, std::vector<int>{0});
  EXPECT_DOUBLE_EQ(acts[0].expected_s, 0.010);
  s.on_event(done(EventKind::kEncodeDone, 0.01, r));
  acts = s.schedule();
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kStep);
  EXPECT_EQ(acts[0].devices, (std::vector<int>{0, 1, 2, 3}));  // "large": B = 4
  EXPECT_DOUBLE_EQ(acts[0].move_s, 0.0);                      // first step: nothing to move
  s.check_invariants();
  s.on_event(done(EventKind::kStepsDone, 0.3, r));
  acts = s.schedule();
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kStep);
  EXPECT_DOUBLE_EQ(acts[0].move_s, 0.0);  // same group
  s.on_event(done(EventKind::kStepsDone, 0.6, r));
  acts = s.schedule();
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kDecode);
  EXPECT_EQ(acts[0].devices, std::vector<int>{0});  // decoupled VAE: lowest id, one device
  s.on_event(done(EventKind::kDecodeDone, 1.0, r));
  EXPECT_TRUE(s.schedule().empty());
  EXPECT_EQ(s.state().requests[r].phase, Phase::kDone);
  EXPECT_DOUBLE_EQ(s.state().requests[r].finish, 1.0);
  s.check_invariants();
}

TEST(Scheduler, EncodesFifoOnTheEncoderDevices) {
  Scheduler s(testing::small_large_profile(), {4, 2}, make_policy("ddit", {}));
  for (int i = 0; i < 3; ++i) s.on_event(arrival(0, 0, 1));
  const auto acts = s.schedule();
  ASSERT_EQ(acts.size(), 2u);
  EXPECT_EQ(acts[0].request, 0);
  EXPECT_EQ(acts[1].request, 1);
  EXPECT_EQ(acts[1].devices, std::vector<int>{1});
  s.check_invariants();
}

TEST(Scheduler, ImpossibleRequestsAreRejectedWithAReason) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("ddit", {}));
  const int bad_shape = s.on_event(arrival(0, 5, 10));
  const int no_steps = s.on_event(arrival(0, 0, 0));
  const auto acts = s.schedule();
  ASSERT_GE(acts.size(), 2u);
  EXPECT_EQ(acts[0].kind, ActionKind::kReject);
  EXPECT_EQ(s.state().requests[bad_shape].reject_reason, "shape not in the profile");
  EXPECT_EQ(s.state().requests[no_steps].phase, Phase::kRejected);
  s.check_invariants();
}

TEST(Scheduler, LostDeviceAbortsTheStepAndTheRequestRunsAgain) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("ddit", {}));
  const int r = s.on_event(arrival(0, 1, 3));
  s.schedule();
  s.on_event(done(EventKind::kEncodeDone, 0.01, r));
  s.schedule();
  Event lost;
  lost.kind = EventKind::kDeviceLost;
  lost.time = 0.1;
  lost.device = 2;
  s.on_event(lost);
  const RequestState& st = s.state().requests[r];
  EXPECT_EQ(st.phase, Phase::kReady);
  EXPECT_EQ(st.steps_done, 0);  // the aborted step is not credited
  EXPECT_EQ(st.epoch, 1);       // the driver drops the old completion
  const auto acts = s.schedule();
  ASSERT_EQ(acts.size(), 1u);
  // Three devices survive; the largest profiled DoP that fits is 2, away from device 2.
  EXPECT_EQ(acts[0].devices, (std::vector<int>{0, 1}));
  EXPECT_DOUBLE_EQ(acts[0].move_s, 0.001);  // the group changed: latents move
  s.check_invariants();
}

class BadPolicy : public Policy {
 public:
  std::string name() const override { return "bad"; }
  Decision decide(const SchedState& s) override {
    Decision d;
    for (int r : s.ready) {
      Action a;
      a.kind = ActionKind::kStep;
      a.request = r;
      a.devices = {0};  // every request on device 0: the second one collides
      a.steps = 1;
      d.actions.push_back(a);
    }
    return d;
  }
};

TEST(Scheduler, APolicyThatDoubleBooksADeviceIsCaught) {
  Scheduler s(testing::small_large_profile(), {4, 2}, std::make_unique<BadPolicy>());
  const int a = s.on_event(arrival(0, 0, 2));
  const int b = s.on_event(arrival(0, 0, 2));
  s.schedule();
  s.on_event(done(EventKind::kEncodeDone, 0.01, a));
  s.on_event(done(EventKind::kEncodeDone, 0.01, b));
  EXPECT_THROW(s.schedule(), SchedulerBug);
}

// Runs every ready request once, then never again.
class OnceEachPolicy : public Policy {
 public:
  std::string name() const override { return "once"; }
  Decision decide(const SchedState& s) override {
    Decision d;
    std::vector<int> free = s.free_devices();
    for (int r : s.ready) {
      if (ran_.count(r) || free.empty()) continue;
      ran_.insert(r);
      Action a;
      a.kind = ActionKind::kStep;
      a.request = r;
      a.devices = {free.back()};
      free.pop_back();
      a.steps = 1;
      d.actions.push_back(a);
    }
    return d;
  }

 private:
  std::set<int> ran_;
};

TEST(Scheduler, ARunningRequestLeftWithoutAStepIsPreempted) {
  Scheduler s(testing::small_large_profile(), {4, 1}, std::make_unique<OnceEachPolicy>());
  const int r = s.on_event(arrival(0, 0, 3));
  s.schedule();
  s.on_event(done(EventKind::kEncodeDone, 0.01, r));
  ASSERT_EQ(s.schedule().size(), 1u);
  s.on_event(done(EventKind::kStepsDone, 0.06, r));
  const auto acts = s.schedule();
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kPreempt);
  EXPECT_EQ(acts[0].devices, std::vector<int>{3});  // where its latents are parked
  EXPECT_TRUE(s.schedule().empty());                // said once, not at every decision
  EXPECT_EQ(s.state().requests[r].phase, Phase::kReady);
  s.check_invariants();
}

TEST(Scheduler, TimeGoingBackwardsIsCaught) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("ddit", {}));
  s.on_event(arrival(5, 0, 1));
  EXPECT_THROW(s.on_event(arrival(4, 0, 1)), SchedulerBug);
}

TEST(Scheduler, PolicyAndProfileMustFitTheCluster) {
  EXPECT_THROW(Scheduler(testing::small_large_profile(), {2, 1}, make_policy("ddit", {})), InvalidInput);
  EXPECT_THROW(Scheduler(testing::small_large_profile(), {4, 1}, make_policy("static:8", {})), InvalidInput);
  EXPECT_THROW(make_policy("static:0", {}), InvalidInput);
  EXPECT_THROW(make_policy("fastest", {}), InvalidInput);
  EXPECT_THROW(make_policy("tetriserve:abc", {}), InvalidInput);
  EXPECT_NO_THROW(make_policy("tetriserve:500", {}));
}

TEST(Scheduler, RejectAllEndsEveryOpenRequest) {
  Scheduler s(testing::small_large_profile(), {4, 1}, make_policy("ddit", {}));
  s.on_event(arrival(0, 0, 1));
  s.on_event(arrival(0, 1, 1));
  s.schedule();
  const auto acts = s.reject_all("horizon");
  EXPECT_EQ(acts.size(), 2u);
  for (const auto& r : s.state().requests) EXPECT_EQ(r.reject_reason, "horizon");
  s.check_invariants();
}

}  // namespace
}  // namespace ditserve::sched
