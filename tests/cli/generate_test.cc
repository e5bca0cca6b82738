// `ditserve generate` end to end on the built-in tiny model: valid MP4/PNG output per
// ffprobe, determinism by seed, and one-line errors (naming the field, non-zero exit, no
// output file) for every kind of bad input.

#include <gtest/gtest.h>

#include <map>

#include "cli/cli_test_util.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"

namespace ditserve {
namespace {

using testing::expect_rejected;
using testing::file_bytes;
using testing::probe_video;
using testing::run_ditserve;
using testing::TempDir;

// `generate` of tiny in 2 steps; `overrides` replace or add options.
std::vector<std::string> generate_args(const std::filesystem::path& output,
                                       const std::map<std::string, std::string>& overrides = {}) {
  return testing::tiny_generate_args("tiny", 2, output, overrides);
}

TEST(GenerateCli, TinyWritesValidMp4) {
  TempDir dir("generate_mp4");
  const auto out = dir / "out.mp4";
  const auto r = run_ditserve(generate_args(
      out, {{"--frames", "16"}, {"--size", "64x64"}, {"--steps", "10"}, {"--fps", "8"}}));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto info = probe_video(out);
  EXPECT_EQ(info.at("codec_name"), "h264");
  EXPECT_EQ(info.at("pix_fmt"), "yuv420p");
  EXPECT_EQ(info.at("width"), "64");
  EXPECT_EQ(info.at("height"), "64");
  EXPECT_EQ(info.at("nb_read_frames"), "16");
  for (const char* phase : {"encode", "denoise", "decode", "write"})
    EXPECT_NE(r.out.find(phase), std::string::npos) << r.out;  // phase timings printed
  // Not a terminal: progress as lines, about every tenth of the steps.
  EXPECT_NE(r.out.find("loaded tiny on cpu:0"), std::string::npos) << r.out;
  for (const char* line : {"denoise 1/10 ", "denoise 5/10 ", "denoise 10/10 "})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  EXPECT_EQ(dir.entries(), 1u);
}

TEST(GenerateCli, NonSquareSizeIsWidthByHeight) {
  TempDir dir("generate_wxh");
  const auto out = dir / "wide.mp4";
  const auto r = run_ditserve(generate_args(out, {{"--size", "48x32"}, {"--frames", "3"}}));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto info = probe_video(out);
  EXPECT_EQ(info.at("width"), "48");
  EXPECT_EQ(info.at("height"), "32");
  EXPECT_EQ(info.at("nb_read_frames"), "3");
}

TEST(GenerateCli, SingleFrameAsPng) {
  TempDir dir("generate_png");
  const auto out = dir / "image.png";
  const auto r = run_ditserve(generate_args(out, {{"--frames", "1"}}));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto info = probe_video(out);
  EXPECT_EQ(info.at("codec_name"), "png");
  EXPECT_EQ(info.at("width"), "32");
  EXPECT_EQ(info.at("height"), "32");
}

TEST(GenerateCli, UncompressedY4m) {
  TempDir dir("generate_y4m");
  const auto out = dir / "video.y4m";
  const auto r = run_ditserve(generate_args(out, {{"--frames", "6"}}));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto info = probe_video(out);
  EXPECT_EQ(info.at("pix_fmt"), "yuv444p");
  EXPECT_EQ(info.at("nb_read_frames"), "6");
  EXPECT_EQ(info.at("width"), "32");
}

TEST(GenerateCli, SameSeedSameBytesOtherSeedDiffers) {
  TempDir dir("generate_seed");
  ASSERT_EQ(run_ditserve(generate_args(dir / "a.mp4")).exit_code, 0);
  ASSERT_EQ(run_ditserve(generate_args(dir / "b.mp4")).exit_code, 0);
  ASSERT_EQ(run_ditserve(generate_args(dir / "c.mp4", {{"--seed", "8"}})).exit_code, 0);
  const std::string a = file_bytes(dir / "a.mp4");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, file_bytes(dir / "b.mp4"));
  EXPECT_NE(a, file_bytes(dir / "c.mp4"));
  ASSERT_EQ(run_ditserve(generate_args(dir / "d.mp4", {{"--prompt", "a cup of coffee"}})).exit_code, 0);
  EXPECT_NE(a, file_bytes(dir / "d.mp4"));  // the prompt conditions the video
}

TEST(GenerateCli, RejectsBadRequests) {
  TempDir out_dir("generate_bad");
  const auto out = out_dir / "out.mp4";
  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += "a horse gallops ";
  expect_rejected(generate_args(out, {{"--model", "nope"}}), out_dir,
                  {"model", "nope", "opensora-v1.2", "tiny"});
  expect_rejected(generate_args(out, {{"--size", "40x32"}}), out_dir, {"size", "16"});
  expect_rejected(generate_args(out, {{"--size", "0x32"}}), out_dir, {"size", "16"});
  expect_rejected(generate_args(out, {{"--size", "64"}}), out_dir, {"size", "WIDTHxHEIGHT"});
  expect_rejected(generate_args(out, {{"--frames", "0"}}), out_dir, {"frames", ">= 1"});
  expect_rejected(generate_args(out, {{"--steps", "0"}}), out_dir, {"steps", ">= 1"});
  expect_rejected(generate_args(out, {{"--steps", "-3"}}), out_dir, {"steps"});
  expect_rejected(generate_args(out, {{"--fps", "0"}}), out_dir, {"fps"});
  expect_rejected(generate_args(out, {{"--prompt", ""}}), out_dir, {"prompt", "empty"});
  expect_rejected(generate_args(out, {{"--prompt", "   "}}), out_dir, {"prompt", "empty"});
  expect_rejected(generate_args(out, {{"--prompt", long_prompt}}), out_dir, {"prompt", "at most 32"});
  expect_rejected(generate_args(out_dir / "out.avi"), out_dir, {"output", ".mp4"});
  expect_rejected(generate_args(out_dir / "out.png", {{"--frames", "3"}}), out_dir,
                  {"output", "frames=1"});
  expect_rejected(generate_args(out_dir / "missing" / "out.mp4"), out_dir, {"output", "missing"});
  expect_rejected(generate_args(out, {{"--model", "opensora-v1.2"}, {"--size", "64x64"}}), out_dir,
                  {"weights", "make-weights"});
  const TempDir empty_weights("generate_bad_weights");
  expect_rejected(generate_args(out, {{"--model", "opensora-v1.2"},
                                      {"--weights", empty_weights.path().string()}}),
                  out_dir, {"weights", "tokenizer/spiece.model"});
  expect_rejected(generate_args(out, {{"--weights", "/nonexistent/ditserve-weights"}}), out_dir,
                  {"weights", "/nonexistent/ditserve-weights"});
}

// Writes `dir`'s transformer checkpoint anew from `tensors`.
void rewrite_transformer(const std::filesystem::path& dir, const NamedTensors& tensors) {
  std::filesystem::remove_all(dir / "transformer");
  write_sharded_checkpoint(dir / "transformer", tensors, std::uint64_t{1} << 30);
}

TEST(GenerateCli, RejectsCheckpointWithMissingOrMisshapedTensor) {
  TempDir weights("generate_ckpt");
  TempDir out_dir("generate_ckpt_out");
  const auto mw = run_ditserve({"make-weights", "tiny", weights.path().string(), "--dtype", "f32"});
  ASSERT_EQ(mw.exit_code, 0) << mw.out;

  NamedTensors all;
  {
    const Checkpoint ckpt(weights / "transformer");
    for (const std::string& name : ckpt.names()) {
      const std::vector<float> v = ckpt.get(name).to_vector_f32();  // owned copies
      all.emplace_back(name, Tensor::from_vector(v, ckpt.get(name).shape()));
    }
  }
  ASSERT_GT(all.size(), 10u);

  NamedTensors missing;
  for (const auto& nt : all)
    if (nt.first != "t_block.1.weight") missing.push_back(nt);
  ASSERT_EQ(missing.size() + 1, all.size());
  rewrite_transformer(weights.path(), missing);
  expect_rejected(generate_args(out_dir / "out.mp4", {{"--weights", weights.path().string()}}),
                  out_dir, {"t_block.1.weight"});

  NamedTensors misshaped = all;
  for (auto& [name, t] : misshaped)
    if (name == "final_layer.linear.bias")
      t = Tensor::from_vector(std::vector<float>(static_cast<std::size_t>(t.numel() + 1), 0.0f),
                              {t.numel() + 1});
  rewrite_transformer(weights.path(), misshaped);
  expect_rejected(generate_args(out_dir / "out.mp4", {{"--weights", weights.path().string()}}),
                  out_dir, {"final_layer.linear.bias"});
}

}  // namespace
}  // namespace ditserve
