#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sched/error.h"
#include "sched/policy.h"
#include "sched/scheduler.h"

// What the runtime needs of a live Scheduler: shapes added and refined while it runs,
// and a request cancelled while it waits.

namespace ditserve::sched {
namespace {

ShapeProfile shape(const std::string& name, double step1, double step2) {
  ShapeProfile s;
  s.name = name;
  s.height = 32;
  s.width = 48;
  s.frames = 5;
  s.step_s = {{1, step1}, {2, step2}};
  s.decode_s = {{1, 0.1}};
  s.encode_s = 0.01;
  return s;
}

Event arrival(double t, int shape, int steps) {
  Event e;
  e.kind = EventKind::kArrival;
  e.time = t;
  e.spec.shape = shape;
  e.spec.steps = steps;
  return e;
}

TEST(LiveProfile, ShapesAddedAndUpdatedWhileRunning) {
  Profile empty;
  empty.model = "tiny";
  Scheduler s(empty, ClusterConfig{2, 1}, make_policy("elastic", {}));
  EXPECT_EQ(s.add_shape(shape("a", 1.0, 0.4)), 0);
  EXPECT_THROW(s.add_shape(shape("a", 1.0, 0.4)), InvalidInput);  // name taken
  ShapeProfile three = shape("b", 1.0, 0.4);
  three.step_s[3] = 0.3;
  EXPECT_THROW(s.add_shape(three), InvalidInput);  // DoP 3 on 2 devices
  const int r = s.on_event(arrival(0, 0, 2));
  s.schedule();  // encode
  Event done;
  done.kind = EventKind::kEncodeDone;
  done.time = 1;
  done.request = r;
  s.on_event(done);
  std::vector<Action> actions = s.schedule();
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].devices.size(), 2u);  // DoP 2 gains 60%: elastic takes both
  // Observed: DoP 2 is slower after all. The policy's next decision follows.
  s.update_shape(0, shape("renamed", 1.0, 1.5));
  EXPECT_EQ(s.profile().shapes[0].name, "a");
  EXPECT_EQ(s.profile().revision, 2);
  done.kind = EventKind::kStepsDone;
  done.time = 2;
  s.on_event(done);
  actions = s.schedule();
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].devices.size(), 1u);
  s.check_invariants();
}

TEST(LiveProfile, CancelEndsAWaitingRequestOnly) {
  Profile p;
  p.model = "tiny";
  p.shapes = {shape("a", 1.0, 0.9)};
  Scheduler s(p, ClusterConfig{2, 1}, make_policy("static:2", {}));
  const int running = s.on_event(arrival(0, 0, 3));
  const int queued = s.on_event(arrival(0, 0, 3));
  s.schedule();  // encodes `running`
  s.cancel(queued, "cancelled");
  EXPECT_EQ(s.state().requests[queued].phase, Phase::kRejected);
  EXPECT_EQ(s.state().requests[queued].reject_reason, "cancelled");
  EXPECT_THROW(s.cancel(running, "cancelled"), SchedulerBug);  // encoding
  Event done;
  done.kind = EventKind::kEncodeDone;
  done.time = 1;
  done.request = running;
  s.on_event(done);
  const std::vector<Action> actions = s.schedule();  // only `running` goes on
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].request, running);
  s.check_invariants();
}

}  // namespace
}  // namespace ditserve::sched
