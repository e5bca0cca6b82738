#include "runtime/profile_estimator.h"

#include <gtest/gtest.h>

#include <algorithm>

// Estimates for shapes never measured, and their refinement from observed durations.

namespace ditserve::runtime {
namespace {

const ShapeKey kSmall{"tiny", 32, 48, 5};
const ShapeKey kLarge{"tiny", 64, 96, 5};  // 4x the work

DevicePrior cpu_prior() {
  DevicePrior p;
  p.step_s_per_work = 1e-6;
  p.decode_s_per_work = 2e-6;
  p.encode_s = 0.1;
  return p;
}

TEST(ProfileEstimator, EstimatesScaleWithWorkAndCoverEveryDop) {
  ProfileEstimator est(sched::Profile{}, cpu_prior());
  EXPECT_EQ(est.find(kSmall), -1);
  const sched::ShapeProfile small = est.figures(kSmall, 4, 1);
  const sched::ShapeProfile large = est.figures(kLarge, 4, 1);
  EXPECT_EQ(small.step_s.size(), 4u);
  EXPECT_DOUBLE_EQ(small.step(1), 1e-6 * kSmall.work());
  EXPECT_DOUBLE_EQ(large.step(1), 4 * small.step(1));
  EXPECT_DOUBLE_EQ(large.decode(1), 4 * small.decode(1));
  EXPECT_GT(small.step(2), small.step(1));  // CPU devices of one process: no speed-up
  EXPECT_EQ(est.figures(kSmall, 1, 1).step_s.size(), 1u);
  DevicePrior gpu = cpu_prior();
  gpu.parallel_speedup = true;
  const sched::ShapeProfile split = ProfileEstimator(sched::Profile{}, gpu).figures(kSmall, 4, 1);
  EXPECT_LT(split.step(4), split.step(2));
  EXPECT_LT(split.step(2), split.step(1));
  EXPECT_EQ(est.add(kSmall, 4, 1), 0);
  EXPECT_EQ(est.find(kSmall), 0);
  EXPECT_EQ(est.profile().shapes.size(), 1u);
}

TEST(ProfileEstimator, ObservationsRefineTheShapeAndTheEstimatesOfOthers) {
  ProfileEstimator est(sched::Profile{}, cpu_prior());
  const int small = est.add(kSmall, 2, 1);
  const int large = est.add(kLarge, 2, 1);
  const std::vector<int> changed = est.observe_step(small, 1, 0.5);
  EXPECT_NE(std::find(changed.begin(), changed.end(), small), changed.end());
  EXPECT_NE(std::find(changed.begin(), changed.end(), large), changed.end());
  const auto& shapes = est.profile().shapes;
  EXPECT_DOUBLE_EQ(shapes[small].step(1), 0.5);                              // first: taken as is
  EXPECT_DOUBLE_EQ(shapes[small].step(2), 0.5 * cpu_prior().step_ratio(2));  // follows DoP 1
  EXPECT_DOUBLE_EQ(shapes[large].step(1), 2.0);  // the learnt cost per unit of work
  est.observe_step(small, 1, 1.5);
  EXPECT_DOUBLE_EQ(shapes[small].step(1), 0.5 + ProfileEstimator::kSmoothing * (1.5 - 0.5));
  est.observe_step(small, 2, 3.0);  // measured now: no longer follows DoP 1
  EXPECT_DOUBLE_EQ(shapes[small].step(2), 3.0);
  est.observe_decode(large, 1, 4.0);
  EXPECT_DOUBLE_EQ(shapes[large].decode(1), 4.0);
  EXPECT_DOUBLE_EQ(shapes[small].decode(1), 1.0);
  est.observe_encode(small, 0.02);
  EXPECT_DOUBLE_EQ(shapes[large].encode_s, 0.02);
  est.observe_move(small, 0.1);
  EXPECT_DOUBLE_EQ(shapes[small].move_s, 0.1);
}

TEST(ProfileEstimator, AGivenProfileIsKeptAndSeedsTheEstimates) {
  sched::Profile base;
  base.model = "tiny";
  sched::ShapeProfile s;
  s.name = "measured";
  s.height = 32;
  s.width = 48;
  s.frames = 5;
  s.step_s = {{1, 0.2}, {2, 0.15}};
  s.decode_s = {{1, 0.3}};
  s.encode_s = 0.05;
  base.shapes = {s};
  ProfileEstimator est(base, cpu_prior());
  EXPECT_EQ(est.find(kSmall), 0);
  EXPECT_EQ(est.find({"other", 32, 48, 5}), -1);
  EXPECT_DOUBLE_EQ(est.figures(kSmall, 4, 4).step(2), 0.15);
  EXPECT_DOUBLE_EQ(est.figures(kLarge, 4, 4).step(1), 0.8);
  est.observe_step(0, 1, 0.4);
  EXPECT_DOUBLE_EQ(est.profile().shapes[0].step(1), 0.2 + ProfileEstimator::kSmoothing * 0.2);
  EXPECT_DOUBLE_EQ(est.profile().shapes[0].step(2), 0.15);  // measured: left alone
}

// A VAE that decodes patch parallel gets decode figures for every group size it may run
// on, so a policy can hand it a group; they follow the measured DoPs as step figures do.
TEST(ProfileEstimator, DecodeFiguresCoverEveryDecodeDopAndFollowTheMeasuredOnes) {
  ProfileEstimator est(sched::Profile{}, cpu_prior());
  const sched::ShapeProfile small = est.figures(kSmall, 4, 4);
  ASSERT_EQ(small.decode_s.size(), 4u);
  EXPECT_DOUBLE_EQ(small.decode(1), 2e-6 * kSmall.work());
  EXPECT_DOUBLE_EQ(small.decode(4), small.decode(1) * cpu_prior().step_ratio(4));
  EXPECT_EQ(small.decode_dop_at_most(2), 2);
  EXPECT_EQ(est.figures(kSmall, 4, 1).decode_s.size(), 1u);  // a VAE without a group decode

  const int s = est.add(kSmall, 4, 4);
  const int l = est.add(kLarge, 4, 2);
  const auto& shapes = est.profile().shapes;
  est.observe_decode(s, 2, 3.0);  // measured on two devices
  EXPECT_DOUBLE_EQ(shapes[s].decode(2), 3.0);
  EXPECT_DOUBLE_EQ(shapes[s].decode(1), 3.0 / cpu_prior().step_ratio(2));
  EXPECT_DOUBLE_EQ(shapes[s].decode(4), 3.0 * cpu_prior().step_ratio(4) / cpu_prior().step_ratio(2));
  // The learnt rate (per unit of work, at DoP 1) carries over to the other shape.
  EXPECT_DOUBLE_EQ(shapes[l].decode(1), 4 * 3.0 / cpu_prior().step_ratio(2));
  EXPECT_DOUBLE_EQ(shapes[l].decode(2), 4 * 3.0);
  est.observe_decode(s, 1, 1.0);  // DoP 1 measured too: DoP 2 keeps its measurement
  EXPECT_DOUBLE_EQ(shapes[s].decode(1), 1.0);
  EXPECT_DOUBLE_EQ(shapes[s].decode(2), 3.0);
  EXPECT_DOUBLE_EQ(shapes[s].decode(4), 3.0 * cpu_prior().step_ratio(4) / cpu_prior().step_ratio(2));
}

}  // namespace
}  // namespace ditserve::runtime
