// `ditserve make-weights`: the checkpoint holds every public tensor with its shape, and
// generating from it reproduces the built-in tiny model exactly.

#include <gtest/gtest.h>

#include "cli/cli_test_util.h"
#include "io/checkpoint.h"
#include "models/registry.h"

namespace ditserve {
namespace {

using testing::file_bytes;
using testing::run_ditserve;
using testing::TempDir;

TEST(MakeWeightsCli, TinyCheckpointHasEveryPublicTensor) {
  TempDir dir("make_weights");
  const auto r = run_ditserve({"make-weights", "tiny", dir.path().string(), "--dtype", "bf16"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / std::string(kTokenizerPath)));
  for (const ComponentWeights& c : model_components(find_model("tiny"))) {
    const Checkpoint ckpt(dir / c.dir);
    EXPECT_EQ(ckpt.names().size(), c.params.size()) << c.dir;
    for (const ParamSpec& p : c.params) {
      ASSERT_TRUE(ckpt.contains(p.name)) << c.dir << ": " << p.name;
      EXPECT_EQ(ckpt.info(p.name).shape, p.shape) << p.name;
      EXPECT_EQ(ckpt.info(p.name).format_dtype, "BF16") << p.name;
    }
  }
}

TEST(MakeWeightsCli, GenerateFromWrittenWeightsMatchesBuiltIn) {
  TempDir dir("make_weights_roundtrip");
  const auto weights = dir / "weights";
  ASSERT_EQ(run_ditserve({"make-weights", "tiny", weights.string(), "--dtype", "f32"}).exit_code, 0);
  const std::vector<std::string> common = {"generate", "--model", "tiny", "--prompt",
                                           "a lighthouse at night", "--frames", "5", "--size",
                                           "32x32", "--steps", "2", "--seed", "3"};
  std::vector<std::string> builtin = common, from_dir = common, other_seed;
  builtin.insert(builtin.end(), {"-o", (dir / "builtin.mp4").string()});
  from_dir.insert(from_dir.end(), {"--weights", weights.string(), "-o", (dir / "dir.mp4").string()});
  const auto a = run_ditserve(builtin);
  const auto b = run_ditserve(from_dir);
  ASSERT_EQ(a.exit_code, 0) << a.out;
  ASSERT_EQ(b.exit_code, 0) << b.out;
  EXPECT_EQ(file_bytes(dir / "builtin.mp4"), file_bytes(dir / "dir.mp4"));

  // Other weights (another seed) give another video.
  const auto seeded = dir / "seeded";
  ASSERT_EQ(run_ditserve({"make-weights", "tiny", seeded.string(), "--dtype", "f32", "--seed", "5"})
                .exit_code,
            0);
  from_dir = common;
  from_dir.insert(from_dir.end(), {"--weights", seeded.string(), "-o", (dir / "seeded.mp4").string()});
  ASSERT_EQ(run_ditserve(from_dir).exit_code, 0);
  EXPECT_NE(file_bytes(dir / "builtin.mp4"), file_bytes(dir / "seeded.mp4"));
}

TEST(MakeWeightsCli, RejectsUnknownModelAndDtype) {
  TempDir dir("make_weights_bad");
  const auto target = dir / "w";
  auto r = run_ditserve({"make-weights", "nope", target.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("model"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tiny"), std::string::npos) << r.out;
  r = run_ditserve({"make-weights", "tiny", target.string(), "--dtype", "i32"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("dtype"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(target));
}

}  // namespace
}  // namespace ditserve
