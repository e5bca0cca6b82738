// The engine's profile, frozen (EngineOptions::refine_profile = false, `serve
// --frozen-profile`) or refined from observed durations (the default), against the
// simulator's decisions on the same profile: frozen, the engine runs every step at the DoP
// `ditserve simulate` runs it at; refined, the CPU's real durations change the decision.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine_testing.h"
#include "runtime/engine.h"
#include "sched/profile.h"
#include "sim/simulator.h"
#include "tensor/error.h"

namespace ditserve::runtime {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using testing::cpu_engine;
using testing::Recorder;
using testing::ScratchDir;
using testing::small_job;

constexpr int kSteps = 8;

// small_job's shape, where two devices step a little faster than one (9 vs 10 us): too
// little to be the optimal DoP (a gain of 10% < kDefaultMinGain), so a request alone runs
// at DoP 1 and, the other device being idle, grows to DoP 2 (elastic's pass 3,
// tetriserve's work-conserving scale-up). A real CPU step takes milliseconds, so once a
// DoP-2 step is observed, DoP 2 looks far slower than the profile's DoP 1.
sched::Profile two_device_profile() {
  sched::ShapeProfile shape;
  shape.name = "48x32x5";
  shape.height = 32;
  shape.width = 48;
  shape.frames = 5;
  shape.step_s = {{1, 10e-6}, {2, 9e-6}};
  shape.decode_s = {{1, 10e-6}};
  shape.encode_s = 10e-6;
  shape.move_s = 0;
  sched::Profile profile;
  profile.model = "tiny";
  profile.hardware = "frozen_profile_test";
  profile.shapes = {shape};
  return profile;
}

std::filesystem::path write_profile(const sched::Profile& profile, const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "profile.json";
  std::ofstream(path) << sched::profile_to_json(profile).dump(2);
  return path;
}

// The DoP of each step of job `id`, in step order, from its progress events.
std::vector<int> step_dops(const Recorder& rec, const std::string& id) {
  std::vector<int> dops;
  for (const JobProgress& p : rec.events(id))
    if (p.phase == JobPhase::kDenoising && p.step == static_cast<int>(dops.size()) + 1) dops.push_back(p.dop);
  return dops;
}

// One request of kSteps steps served by the engine under `policy`, alone on two devices.
std::vector<int> served_step_dops(const std::string& policy, bool refine_profile) {
  const ScratchDir scratch;
  EngineOptions options = cpu_engine(2, policy);
  options.profile = write_profile(two_device_profile(), scratch.path());
  options.refine_profile = refine_profile;
  Recorder rec;
  const auto engine = make_engine(options);
  engine->set_listener(rec.listener());
  engine->submit(small_job("alone", scratch.path(), kSteps));
  const JobProgress end = rec.wait_terminal("alone");
  EXPECT_EQ(end.phase, JobPhase::kCompleted) << policy << ": " << end.error;
  return step_dops(rec, "alone");
}

std::map<int, long> histogram(const std::vector<int>& dops) {
  std::map<int, long> out;
  for (int d : dops) ++out[d];
  return out;
}

class FrozenProfile : public ::testing::TestWithParam<std::string> {};

TEST_P(FrozenProfile, EngineStepsAtTheSimulatorsDoPs) {
  const std::string policy = GetParam();
  sched::RequestSpec request;
  request.shape = 0;
  request.steps = kSteps;
  sim::SimOptions sim_options;
  sim_options.devices = 2;
  const sim::SimResult simulated = sim::simulate(two_device_profile(), policy, {request}, sim_options);
  ASSERT_EQ(simulated.dop_steps, (std::map<int, long>{{2, kSteps}})) << policy;

  const std::vector<int> frozen = served_step_dops(policy, false);
  ASSERT_EQ(frozen.size(), static_cast<std::size_t>(kSteps)) << policy;
  EXPECT_EQ(histogram(frozen), simulated.dop_steps) << policy;
}

// What serve does by default (and why serve vs simulate differ without --frozen-profile):
// the observed DoP-2 steps replace the profile's 9 us, and the request goes back to one
// device. (Later, observed DoP-1 steps replace the 10 us too, and which DoP runs next
// follows the CPU's noise: no fixed sequence to expect.)
TEST_P(FrozenProfile, RefinedProfileFollowsTheObservedDurations) {
  const std::string policy = GetParam();
  const std::vector<int> refined = served_step_dops(policy, true);
  ASSERT_EQ(refined.size(), static_cast<std::size_t>(kSteps)) << policy;
  EXPECT_EQ(refined.front(), 2) << policy;
  EXPECT_THAT(refined, Contains(1)) << policy;
}


INSTANTIATE_TEST_SUITE_P(Policies, FrozenProfile, ::testing::Values("elastic", "tetriserve"));

// A one-step job on one device: its encode, step and decode are each the device's first
// run of that work, so the profile (seen through the latency estimate, which reads only
// the profile on an idle engine) stays as loaded; the same job again is measured.
TEST(FirstUseObservations, TheFirstRunOfEachPhaseOnADeviceLeavesTheProfileAsLoaded) {
  const ScratchDir scratch;
  sched::Profile one_device = two_device_profile();
  one_device.shapes.front().step_s = {{1, 10e-6}};
  EngineOptions options = cpu_engine(1, "elastic");
  options.profile = write_profile(one_device, scratch.path());
  Recorder rec;
  const auto engine = make_engine(options);
  engine->set_listener(rec.listener());
  const JobSpec probe = small_job("probe", scratch.path(), 1);
  const double loaded = engine->estimate_latency_s(probe);

  engine->submit(small_job("first", scratch.path(), 1));
  const JobProgress first = rec.wait_terminal("first");
  ASSERT_EQ(first.phase, JobPhase::kCompleted) << first.error;
  EXPECT_EQ(engine->estimate_latency_s(probe), loaded);

  engine->submit(small_job("second", scratch.path(), 1));
  const JobProgress second = rec.wait_terminal("second");
  ASSERT_EQ(second.phase, JobPhase::kCompleted) << second.error;
  // A CPU encode, step and decode take milliseconds, the profile says 10 us each.
  EXPECT_GT(engine->estimate_latency_s(probe), loaded);
}

// The first DoP-2 step is each device's first run of that work (lazy setup included), so
// it refines nothing: the second step still runs at the profile's DoP 2, and only its
// duration sends the request back to one device. (elastic re-decides the DoP at every
// step; tetriserve runs a round's steps at one DoP, so its second step shows nothing.)
TEST(FirstUseObservations, AFirstUseStepRefinesNothing) {
  const std::vector<int> refined = served_step_dops("elastic", true);
  ASSERT_EQ(refined.size(), static_cast<std::size_t>(kSteps));
  EXPECT_EQ(refined[0], 2);
  EXPECT_EQ(refined[1], 2);
  EXPECT_THAT(refined, Contains(1));
}

TEST(FrozenProfileOptions, AFrozenProfileNeedsAProfileFile) {
  EngineOptions options = cpu_engine(1, "elastic");
  options.refine_profile = false;
  try {
    make_engine(options);
    ADD_FAILURE() << "refine_profile = false without a profile was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("refine_profile"));
  }
}

}  // namespace
}  // namespace ditserve::runtime
