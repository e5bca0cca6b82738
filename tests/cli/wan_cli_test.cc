// The Wan 2.1 path of the CLI on the built-in `tiny-wan`: a valid MP4 of 4k+1 frames,
// determinism by seed, one-line errors for frames, size, prompts and sampler, and
// make-weights in both public layouts (each loading back).

#include <gtest/gtest.h>

#include <map>

#include "cli/cli_test_util.h"
#include "io/checkpoint.h"
#include "models/registry.h"

namespace ditserve {
namespace {

using testing::expect_rejected;
using testing::file_bytes;
using testing::probe_video;
using testing::run_ditserve;
using testing::TempDir;

// `generate` of tiny-wan in 3 steps; `overrides` replace or add options.
std::vector<std::string> wan_args(const std::filesystem::path& output,
                                  const std::map<std::string, std::string>& overrides = {}) {
  return testing::tiny_generate_args("tiny-wan", 3, output, overrides);
}

TEST(WanCli, TinyWanWritesValidMp4) {
  TempDir dir("wan_mp4");
  const auto out = dir / "out.mp4";
  const auto r = run_ditserve(wan_args(out, {{"--frames", "9"}, {"--size", "48x32"}}));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("tiny-wan"), std::string::npos) << r.out;
  const auto info = probe_video(out);
  EXPECT_EQ(info.at("codec_name"), "h264");
  EXPECT_EQ(info.at("width"), "48");
  EXPECT_EQ(info.at("height"), "32");
  EXPECT_EQ(info.at("nb_read_frames"), "9");
}

TEST(WanCli, SameSeedSameBytesOtherSeedSamplerOrNegativePromptDiffers) {
  TempDir dir("wan_seed");
  ASSERT_EQ(run_ditserve(wan_args(dir / "a.mp4")).exit_code, 0);
  ASSERT_EQ(run_ditserve(wan_args(dir / "b.mp4")).exit_code, 0);
  const std::string a = file_bytes(dir / "a.mp4");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, file_bytes(dir / "b.mp4"));
  const std::vector<std::pair<std::string, std::map<std::string, std::string>>> others = {
      {"seed.mp4", {{"--seed", "8"}}},
      {"euler.mp4", {{"--sampler", "euler"}}},
      {"negative.mp4", {{"--negative-prompt", "blurry, static"}}},
      {"guidance.mp4", {{"--guidance", "1.5"}}}};
  for (const auto& [name, overrides] : others) {
    const auto r = run_ditserve(wan_args(dir / name, overrides));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(a, file_bytes(dir / name)) << name;
  }
}

TEST(WanCli, RandomWeightsReplaceTheCheckpointAndDependOnTheirSeed) {
  TempDir dir("wan_random");
  // wan2.1-t2v-1.3b has no built-in weights; a tiny size keeps this cheap on the CPU.
  auto args = [&](const std::string& name, const std::string& seed) {
    return testing::command_args("generate",
                                 {{"--model", "tiny-wan"}, {"--prompt", "a fox"}, {"--frames", "5"},
                                  {"--size", "32x32"}, {"--steps", "2"}, {"--random-weights", seed},
                                  {"-o", (dir / name).string()}},
                                 {});
  };
  ASSERT_EQ(run_ditserve(args("builtin.mp4", "0")).exit_code, 0);
  ASSERT_EQ(run_ditserve(args("other.mp4", "5")).exit_code, 0);
  const auto plain = run_ditserve(testing::command_args(
      "generate", {{"--model", "tiny-wan"}, {"--prompt", "a fox"}, {"--frames", "5"}, {"--size", "32x32"},
                   {"--steps", "2"}, {"-o", (dir / "plain.mp4").string()}},
      {}));
  ASSERT_EQ(plain.exit_code, 0) << plain.out;
  // tiny-wan's built-in weights are seed 0: the same video; another seed, another video.
  EXPECT_EQ(file_bytes(dir / "builtin.mp4"), file_bytes(dir / "plain.mp4"));
  EXPECT_NE(file_bytes(dir / "builtin.mp4"), file_bytes(dir / "other.mp4"));
  auto both = args("both.mp4", "1");
  both.push_back("--weights");
  both.push_back(dir.path().string());
  const auto r = run_ditserve(both);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("random-weights:"), std::string::npos) << r.out;
}

TEST(WanCli, RejectsWhatWanCannotTake) {
  TempDir out_dir("wan_bad");
  const auto out = out_dir / "out.mp4";
  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += "a horse gallops ";
  expect_rejected(wan_args(out, {{"--frames", "6"}}), out_dir, {"frames", "4k+1"});
  expect_rejected(wan_args(out, {{"--frames", "16"}}), out_dir, {"frames", "4k+1"});
  expect_rejected(wan_args(out, {{"--size", "40x32"}}), out_dir, {"size", "16"});
  expect_rejected(wan_args(out, {{"--size", "32x24"}}), out_dir, {"size", "16"});
  // Over-long prompts are refused, not truncated (tiny-wan's encoder takes 64 tokens).
  expect_rejected(wan_args(out, {{"--prompt", long_prompt}}), out_dir, {"prompt", "at most 64"});
  expect_rejected(wan_args(out, {{"--negative-prompt", long_prompt}}), out_dir,
                  {"negative_prompt", "at most 64"});
  expect_rejected(wan_args(out, {{"--sampler", "rflow"}}), out_dir, {"sampler", "unipc"});
  expect_rejected(wan_args(out, {{"--sampler", "ddim"}}), out_dir, {"sampler", "euler"});
  expect_rejected(wan_args(out, {{"--shift", "0"}}), out_dir, {"shift", "> 0"});
  expect_rejected(wan_args(out, {{"--model", "wan2.1-t2v-1.3b"}}), out_dir,
                  {"weights", "make-weights"});
  // Open-Sora models take neither flow samplers nor a shift.
  expect_rejected(wan_args(out, {{"--model", "tiny"}, {"--sampler", "unipc"}}), out_dir,
                  {"sampler", "rflow"});
  expect_rejected(wan_args(out, {{"--model", "tiny"}, {"--shift", "3"}}), out_dir, {"shift"});
}

TEST(WanCli, MakeWeightsWritesEitherLayoutAndBothLoad) {
  TempDir dir("wan_weights");
  const auto original = dir / "original", diffusers = dir / "diffusers";
  auto r = run_ditserve({"make-weights", "tiny-wan", original.string(), "--dtype", "f32"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_ditserve({"make-weights", "tiny-wan", diffusers.string(), "--layout", "diffusers"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const ModelSpec spec = find_model("tiny-wan");
  for (const auto& [path, layout] : {std::pair{original, WeightLayout::original},
                                     std::pair{diffusers, WeightLayout::diffusers}}) {
    for (const ComponentWeights& c : model_components(spec, layout)) {
      const Checkpoint ckpt(path / c.dir);
      EXPECT_EQ(ckpt.names().size(), c.params.size()) << c.dir;
      for (const ParamSpec& p : c.params) {
        ASSERT_TRUE(ckpt.contains(p.name)) << path << " " << c.dir << ": " << p.name;
        EXPECT_EQ(ckpt.info(p.name).shape, p.shape) << p.name;
      }
    }
  }
  EXPECT_TRUE(Checkpoint(original / "vae").contains("decoder.middle.0.residual.0.gamma"));
  EXPECT_TRUE(Checkpoint(diffusers / "vae").contains("decoder.mid_block.resnets.0.norm1.gamma"));

  // The original layout in f32 is the built-in model; the diffusers one loads too.
  ASSERT_EQ(run_ditserve(wan_args(dir / "builtin.mp4")).exit_code, 0);
  r = run_ditserve(wan_args(dir / "original.mp4", {{"--weights", original.string()}}));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(file_bytes(dir / "builtin.mp4"), file_bytes(dir / "original.mp4"));
  r = run_ditserve(wan_args(dir / "diffusers.mp4", {{"--weights", diffusers.string()}}));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(probe_video(dir / "diffusers.mp4").at("nb_read_frames"), "5");

  r = run_ditserve({"make-weights", "tiny", (dir / "bad").string(), "--layout", "diffusers"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("layout"), std::string::npos) << r.out;
  r = run_ditserve({"make-weights", "tiny-wan", (dir / "bad").string(), "--layout", "hf"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("layout"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace ditserve
