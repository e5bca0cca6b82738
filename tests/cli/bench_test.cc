// `ditserve bench step` on the CPU at a tiny size: the JSON it writes (timings, FLOPs,
// peak fraction, per-stage breakdown, the row dump) and its errors.

#include <gtest/gtest.h>

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "cli/cli_test_util.h"
#include "io/safetensors.h"

namespace ditserve {
namespace {

using testing::file_bytes;
using testing::run_ditserve;
using testing::TempDir;

TEST(BenchStepCli, WritesTimingsFlopsAndTheRowDump) {
  TempDir dir("bench_step");
  const auto json = dir / "step.json";
  const auto r = run_ditserve({"bench", "step", "--model", "tiny", "--device", "cpu", "--latent",
                               "2,4,6", "--warmup", "0", "--steps", "2", "--peak-tflops", "1",
                               "--breakdown", "--dump-dir", (dir / "rows").string(), "--json",
                               json.string()},
                              {"DITSERVE_GEMM_AUTOTUNE=0"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(file_bytes(json));
  EXPECT_EQ(j["component"], "dit");
  // The kernel-path switches the run saw: set ones with their value, the others null.
  EXPECT_EQ(j["environment"]["DITSERVE_GEMM_AUTOTUNE"], "0");
  if (std::getenv("DITSERVE_CUDNN_AUTOTUNE") == nullptr)  // inherited when set here
    EXPECT_TRUE(j["environment"]["DITSERVE_CUDNN_AUTOTUNE"].is_null());
  EXPECT_TRUE(j["environment"].contains("DITSERVE_SHORT_KERNELS"));
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["device"], "cpu:0");
  EXPECT_EQ(j["batch"], 2);
  EXPECT_NE(j["command"].get<std::string>().find("bench step"), std::string::npos);
  ASSERT_EQ(j["rows"].size(), 1u);
  const auto& row = j["rows"][0];
  EXPECT_EQ(row["name"], "2x4x6");
  EXPECT_EQ(row["tokens"], 2 * 2 * 3);  // (T, H/2, W/2) patches
  ASSERT_EQ(row["ms_all"].size(), 2u);
  EXPECT_GT(row["ms"].get<double>(), 0.0);
  // tiny: C 64, F 256, depth 2, L 32 caption tokens of 64 channels, batch 2, N 12, S 6, T 2.
  const double n = 12, s = 6, t = 2, c = 64, f = 256, l = 32, cc = 64;
  const double linears = 2 * n * (6 * c * c + 2 * c * f) + 4 * l * c * c;
  const double blocks = 2 * linears + 4 * n * s * c + 4 * n * t * c + 8 * n * l * c;
  const double want = 2 * (2 * blocks + 2 * l * (cc * c + c * c) + 2 * n * c * (4 + 8) * 4);
  EXPECT_DOUBLE_EQ(row["flop"].get<double>(), want);
  const double tflops = row["tflops"].get<double>();
  EXPECT_NEAR(tflops, want / (row["ms"].get<double>() * 1e-3) / 1e12, tflops * 1e-9);
  EXPECT_NEAR(row["peak_fraction"].get<double>(), tflops, tflops * 1e-9);  // peak 1 TFLOP/s
  EXPECT_TRUE(row["breakdown_ms"].contains("temporal.self_attention"));
  EXPECT_TRUE(row["breakdown_ms"].contains("spatial.fc1_gelu"));
  // Both kinds of block fold the gated residual into attn.proj; temporal ones permute nothing.
  EXPECT_TRUE(row["breakdown_ms"].contains("temporal.proj_gate_residual"));
  EXPECT_TRUE(row["breakdown_ms"].contains("spatial.proj_gate_residual"));
  for (const char* gone : {"temporal.permute", "temporal.proj", "temporal.gate_residual"})
    EXPECT_FALSE(row["breakdown_ms"].contains(gone)) << gone;
  const SafetensorsFile dump(dir / "rows" / "2x4x6.safetensors");
  EXPECT_EQ(dump.info("output").shape, (Shape{2, 8, 2, 4, 6}));
  EXPECT_EQ(dump.info("captions").shape, (Shape{2, 32, 64}));
}

TEST(BenchStepCli, WanDitFlopsExportAndDumpAndTheVaeAndEncoder) {
  TempDir dir("bench_wan");
  const auto json = dir / "wan.json";
  const auto r = run_ditserve({"bench", "step", "--model", "tiny-wan", "--device", "cpu", "--latent",
                               "2,4,6", "--warmup", "0", "--steps", "1", "--breakdown", "--export-weights",
                               (dir / "w").string(), "--dump-dir", (dir / "rows").string(), "--json",
                               json.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(file_bytes(json));
  EXPECT_EQ(j["model"], "tiny-wan");
  EXPECT_EQ(j["config"]["dim"], 96);
  EXPECT_EQ(j["config"]["text_len"], 64);
  ASSERT_EQ(j["rows"].size(), 1u);
  const auto& row = j["rows"][0];
  EXPECT_EQ(row["tokens"], 2 * 2 * 3);
  // tiny-wan: C 96, F 192, 2 layers, L = text_len 64 of E 64 channels, batch 2, N 12.
  const double n = 12, c = 96, f = 192, l = 64, e = 64;
  const double block = 2 * n * (6 * c * c + 2 * c * f) + 4 * l * c * c + 4 * n * n * c + 4 * n * l * c;
  const double want = 2 * (2 * block + 2 * l * (e * c + c * c) + 2 * n * c * (16 + 16) * 4);
  EXPECT_DOUBLE_EQ(row["flop"].get<double>(), want);
  for (const char* stage : {"prepare_embed", "norm1_qkv", "qk_norm_rope", "self_attention",
                            "o_gate_residual", "cross_attention", "norm2_ffn1_gelu", "ffn2_gate_residual"})
    EXPECT_TRUE(row["breakdown_ms"].contains(stage)) << stage;
  // What the diffusers reference loads: diffusers' names, bf16.
  const SafetensorsFile weights(dir / "w" / "model-00001-of-00001.safetensors");
  EXPECT_EQ(weights.info("proj_out.weight").shape, (Shape{64, 96}));
  EXPECT_EQ(weights.info("proj_out.weight").dtype, DType::bf16);
  const SafetensorsFile dump(dir / "rows" / "2x4x6.safetensors");
  EXPECT_EQ(dump.info("output").shape, (Shape{2, 16, 2, 4, 6}));
  EXPECT_EQ(dump.info("captions").shape, (Shape{2, 64, 64}));

  for (const char* component : {"vae", "t5"}) {
    const auto out = dir / (std::string(component) + ".json");
    const auto v = run_ditserve({"bench", "step", "--model", "tiny-wan", "--device", "cpu",
                                 "--component", component, "--warmup", "0", "--steps", "1",
                                 "--json", out.string()});
    ASSERT_EQ(v.exit_code, 0) << v.out;
    const auto k = nlohmann::json::parse(file_bytes(out));
    ASSERT_EQ(k["rows"].size(), 1u);
    EXPECT_GT(k["rows"][0]["ms"].get<double>(), 0.0);
    EXPECT_EQ(k["rows"][0]["name"], std::string(component) == "vae" ? "vae-decode-64p-5f" : "t5-encode-64");
  }
  const auto bad = run_ditserve({"bench", "step", "--model", "tiny-wan", "--device", "cpu", "--rows", "144p-51f"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("known: all, 480p-81f, 720p-81f"), std::string::npos) << bad.out;
}

TEST(BenchStepCli, RejectsUnknownRowsAndFlags) {
  auto r = run_ditserve({"bench", "step", "--model", "tiny", "--device", "cpu", "--rows", "999p"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("rows: unknown row '999p'"), std::string::npos) << r.out;
  r = run_ditserve({"bench", "step", "--model", "tiny", "--device", "cpu", "--latent", "2,x,4"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("latent"), std::string::npos) << r.out;
  r = run_ditserve({"bench", "step", "--component", "unet", "--device", "cpu"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("component"), std::string::npos) << r.out;
  r = run_ditserve({"bench", "step", "--no-such-flag"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--no-such-flag"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace ditserve
