// `ditserve profile`: on two CPU devices with the tiny model and with tiny-wan (Ulysses
// steps, patch-parallel Wan VAE decode) it writes a profile that the scheduler's loader
// accepts (and `ditserve simulate` runs on), with every (shape, DoP) measured;
// --random-weights stands in for a full model's checkpoint; bad flags fail naming the flag.

#include "sched/profile.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "cli/cli_test_util.h"

namespace ditserve {
namespace {

using testing::run_ditserve;
using testing::TempDir;

// The rest of the line of `out` from `start`'s first occurrence on ("" when none).
std::string line_from(const std::string& out, const std::string& start) {
  const std::size_t at = out.find(start);
  if (at == std::string::npos) return {};
  return out.substr(at, out.find('\n', at) - at);
}

// The relative error the profile printed for `shape`'s DoP-2 latents against DoP 1's
// (infinity when it printed none).
double agreement_with_dop1(const std::string& out, const std::string& shape) {
  const std::string line = line_from(out, shape + " DoP 2 vs DoP 1 after ");
  const std::size_t at = line.find("rel. error ");
  return at == std::string::npos ? std::numeric_limits<double>::infinity()
                                 : std::stod(line.substr(at + 11));
}

TEST(ProfileCli, WritesAProfileTheSchedulerLoads) {
  TempDir dir("profile");
  const std::string out = (dir / "tiny.json").string();
  const auto r = run_ditserve({"profile", "--model", "tiny", "--devices", "cpu:0,cpu:1", "--shapes",
                               "32x32:5,48x32:1", "--dop", "1,2", "--steps-timed", "1", "--warmup",
                               "0", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("32x32 step DoP 2"), std::string::npos) << r.out;  // progress lines
  // Each DoP's latents after the same steps are checked against DoP 1's.
  for (const char* shape : {"32x32", "48x32"})
    EXPECT_LT(agreement_with_dop1(r.out, shape), 1e-4) << r.out;

  const sched::Profile p = sched::load_profile(out);
  EXPECT_EQ(p.model, "tiny");
  ASSERT_EQ(p.shapes.size(), 2u);
  EXPECT_EQ(p.shapes[0].name, "32x32");
  EXPECT_EQ(p.shapes[0].frames, 5);
  EXPECT_EQ(p.shapes[1].name, "48x32");
  EXPECT_EQ(p.shapes[1].width, 48);
  EXPECT_EQ(p.shapes[1].height, 32);
  EXPECT_EQ(p.shapes[1].frames, 1);
  for (const sched::ShapeProfile& s : p.shapes) {
    ASSERT_EQ(s.step_s.size(), 2u) << s.name;
    ASSERT_EQ(s.decode_s.size(), 2u) << s.name;
    for (const int dop : {1, 2}) {
      EXPECT_GT(s.step(dop), 0.0) << s.name;
      EXPECT_GT(s.decode(dop), 0.0) << s.name;
    }
    EXPECT_GT(s.encode_s, 0.0);
    EXPECT_GT(s.move_s, 0.0);
  }
  EXPECT_NO_THROW(p.check_fits(2));

  const auto sim = run_ditserve(
      {"simulate", "--profile", out, "--devices", "2", "--count", "4", "--policy", "elastic"});
  EXPECT_EQ(sim.exit_code, 0) << sim.out;
}

TEST(ProfileCli, TinyWanProfilesUlyssesStepsAndPatchParallelDecode) {
  TempDir dir("profile_wan");
  const std::string out = (dir / "tiny-wan.json").string();
  const auto r = run_ditserve({"profile", "--model", "tiny-wan", "--devices", "cpu:0,cpu:1",
                               "--shapes", "32x32:5", "--dop", "1,2", "--steps-timed", "1",
                               "--warmup", "0", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("32x32 step DoP 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("32x32 decode DoP 2"), std::string::npos) << r.out;
  EXPECT_LT(agreement_with_dop1(r.out, "32x32"), 1e-4) << r.out;

  const sched::Profile p = sched::load_profile(out);
  EXPECT_EQ(p.model, "tiny-wan");
  ASSERT_EQ(p.shapes.size(), 1u);
  const sched::ShapeProfile& s = p.shapes[0];
  EXPECT_EQ(s.frames, 5);
  ASSERT_EQ(s.step_s.size(), 2u);
  ASSERT_EQ(s.decode_s.size(), 2u);
  for (const int dop : {1, 2}) {
    EXPECT_GT(s.step(dop), 0.0);
    EXPECT_GT(s.decode(dop), 0.0);
  }
  EXPECT_GT(s.encode_s, 0.0);
  EXPECT_GT(s.move_s, 0.0);

  // Wan's frame rule is checked up front, naming the shape.
  const auto bad = run_ditserve({"profile", "--model", "tiny-wan", "--devices", "cpu:0",
                                 "--shapes", "32x32:6", "--out", out + ".bad"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("--shapes: 32x32"), std::string::npos) << bad.out;
}

TEST(ProfileCli, RandomWeightsStandInForAFullModelsCheckpoint) {
  TempDir dir("profile_random");
  const std::string out = (dir / "p.json").string();
  // wan2.1-t2v-1.3b has no built-in weights: without a checkpoint it is refused ...
  const std::vector<std::string> full = {"profile", "--model", "wan2.1-t2v-1.3b", "--devices",
                                         "cpu:0", "--shapes", "832x480:81,832x480:6", "--out",
                                         out};
  const auto no_weights = run_ditserve(full);
  EXPECT_NE(no_weights.exit_code, 0);
  EXPECT_NE(no_weights.out.find("weights:"), std::string::npos) << no_weights.out;

  // ... with --random-weights it gets past the weights and checks every shape against the
  // full model before loading it (the second shape breaks Wan's 4k+1 frame rule, so
  // nothing is loaded), printing what each valid shape runs as.
  std::vector<std::string> random = full;
  random.insert(random.end(), {"--random-weights", "0"});
  const auto r = run_ditserve(random);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out.find("weights:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--shapes: 832x480-6f"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("832x480 runs at 832x480, 81 frames -> 21 latent frames"),
            std::string::npos)
      << r.out;

  // Not together with a weights directory.
  std::vector<std::string> both = random;
  both.insert(both.end(), {"--weights", dir.path().string()});
  const auto conflict = run_ditserve(both);
  EXPECT_NE(conflict.exit_code, 0);
  EXPECT_NE(conflict.out.find("--random-weights:"), std::string::npos) << conflict.out;
  EXPECT_FALSE(std::filesystem::exists(out));

  // On a model it can load here, a run on random weights writes its profile.
  const auto tiny = run_ditserve({"profile", "--model", "tiny", "--random-weights", "3",
                                  "--devices", "cpu:0,cpu:1", "--shapes", "32x32:5", "--dop",
                                  "1,2", "--steps-timed", "1", "--warmup", "0", "--out", out});
  ASSERT_EQ(tiny.exit_code, 0) << tiny.out;
  const sched::Profile p = sched::load_profile(out);
  ASSERT_EQ(p.shapes.size(), 1u);
  EXPECT_GT(p.shapes[0].step(2), 0.0);
}

TEST(ProfileCli, BadFlagsNameTheFlag) {
  TempDir dir("profile_errors");
  const std::string out = (dir / "p.json").string();
  const auto error_of = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"profile", "--model", "tiny", "--out", out};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_ditserve(args);
    EXPECT_NE(r.exit_code, 0) << r.out;
    return r.out;
  };
  EXPECT_NE(error_of({"--devices", "cpu:0", "--dop", "1,2"}).find("--dop"), std::string::npos);
  EXPECT_NE(error_of({"--devices", "cpu:0", "--dop", "2"}).find("--dop"), std::string::npos);
  EXPECT_NE(error_of({"--devices", "cpu:0,cpu:zero"}).find("--devices"), std::string::npos);
  EXPECT_NE(error_of({"--devices", "cpu:0,cpu:0"}).find("--devices"), std::string::npos);
  EXPECT_NE(error_of({"--devices", "cpu:0", "--shapes", "99q:5"}).find("--shapes"),
            std::string::npos);
  EXPECT_NE(error_of({"--devices", "cpu:0", "--shapes", "32x32:0"}).find("--shapes"),
            std::string::npos);
  EXPECT_NE(error_of({"--devices", "cpu:0", "--steps-timed", "0"}).find("--steps-timed"),
            std::string::npos);
  EXPECT_NE(error_of({"--devices", "cpu:0", "--model", "nope"}).find("model"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace ditserve
