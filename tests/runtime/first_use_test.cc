#include "runtime/first_use.h"

#include <gtest/gtest.h>

// Which observed durations are a device's first run of some work (kept out of the profile).

namespace ditserve::runtime {
namespace {

using Phase = FirstUseFilter::Phase;

TEST(FirstUseFilter, OnlyTheFirstRunOfTheSameWorkOnTheSameDevicesIsFirst) {
  FirstUseFilter filter;
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {0}));
  EXPECT_FALSE(filter.first_use(Phase::kStep, 0, {0}));
  EXPECT_FALSE(filter.first_use(Phase::kStep, 0, {0}));
}

TEST(FirstUseFilter, EachDeviceSetsUpItsOwnBackend) {
  FirstUseFilter filter;
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {0}));
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {1}));  // device 1 never ran it
  EXPECT_FALSE(filter.first_use(Phase::kStep, 0, {1}));
}

TEST(FirstUseFilter, AnotherShapeDopOrPhaseIsNewWork) {
  FirstUseFilter filter;
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {0}));
  EXPECT_TRUE(filter.first_use(Phase::kStep, 1, {0}));     // another shape
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {0, 1}));  // a DoP-2 step cuts other GEMMs
  EXPECT_TRUE(filter.first_use(Phase::kDecode, 0, {0}));
  EXPECT_TRUE(filter.first_use(Phase::kEncode, 0, {0}));
  EXPECT_FALSE(filter.first_use(Phase::kStep, 1, {0}));
  EXPECT_FALSE(filter.first_use(Phase::kStep, 0, {0, 1}));
  EXPECT_FALSE(filter.first_use(Phase::kDecode, 0, {0}));
  EXPECT_FALSE(filter.first_use(Phase::kEncode, 0, {0}));
}

TEST(FirstUseFilter, AGroupIsFirstWhenAnyMemberIsNewToItsPosition) {
  FirstUseFilter filter;
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {0, 1}));
  EXPECT_FALSE(filter.first_use(Phase::kStep, 0, {0, 1}));
  // The same devices with the other leader: each now runs the other band of the latent.
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {1, 0}));
  EXPECT_FALSE(filter.first_use(Phase::kStep, 0, {1, 0}));
  // Device 0 has led a DoP-2 step, device 2 never ran one: still a first use.
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {0, 2}));
  // Every member has run its position's work, though not in this group.
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {2, 1}));  // device 2 leads for the first time
  EXPECT_FALSE(filter.first_use(Phase::kStep, 0, {2, 0}));
}

TEST(FirstUseFilter, WithCudaGraphsTheCaptureIsSetUpToo) {
  FirstUseFilter filter(/*step_setup_runs=*/2);
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {0}));   // eager: plans, autotuning
  EXPECT_TRUE(filter.first_use(Phase::kStep, 0, {0}));   // the capture
  EXPECT_FALSE(filter.first_use(Phase::kStep, 0, {0}));  // replays
  EXPECT_TRUE(filter.first_use(Phase::kDecode, 0, {0}));  // decodes are not graphed
  EXPECT_FALSE(filter.first_use(Phase::kDecode, 0, {0}));
}

TEST(FirstUseFilter, SetUpRunsOfAnActionsStepsCountFromTheFirst) {
  FirstUseFilter graphs(2);
  EXPECT_EQ(graphs.setup_runs(Phase::kStep, 0, {0}, 5), 2);
  EXPECT_EQ(graphs.setup_runs(Phase::kStep, 0, {0}, 5), 0);
  EXPECT_EQ(graphs.setup_runs(Phase::kStep, 1, {0}, 1), 1);  // one action of one step
  EXPECT_EQ(graphs.setup_runs(Phase::kStep, 1, {0}, 3), 1);  // then the capture
  // A group is set up once its least experienced member is.
  EXPECT_EQ(graphs.setup_runs(Phase::kStep, 1, {0, 1}, 1), 1);
  EXPECT_EQ(graphs.setup_runs(Phase::kStep, 1, {0, 1}, 4), 1);
  EXPECT_EQ(graphs.setup_runs(Phase::kStep, 1, {0, 1}, 4), 0);
  FirstUseFilter eager;
  EXPECT_EQ(eager.setup_runs(Phase::kStep, 0, {0}, 5), 1);
  EXPECT_EQ(eager.setup_runs(Phase::kStep, 0, {0}, 5), 0);
}

}  // namespace
}  // namespace ditserve::runtime
