// --cuda-graphs on the CPU (where a capture runs the work and a replay runs it again):
// `bench step` records the replayed rows with their difference from an eager step,
// refuses the combinations it cannot honour, and `generate` writes the same bytes with
// and without it.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli/cli_test_util.h"

namespace ditserve {
namespace {

using testing::file_bytes;
using testing::run_ditserve;
using testing::TempDir;

TEST(CudaGraphsCli, BenchStepRecordsReplayedRowsAndTheirDifferenceFromEager) {
  TempDir dir("graphs_bench");
  for (const char* model : {"tiny", "tiny-wan"}) {
    const auto json = dir / (std::string(model) + ".json");
    const auto r = run_ditserve({"bench", "step", "--model", model, "--device", "cpu", "--latent",
                                 "2,4,4", "--warmup", "1", "--steps", "2", "--cuda-graphs",
                                 "--json", json.string()},
                                {"DITSERVE_GEMM_AUTOTUNE=0"});
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto j = nlohmann::json::parse(file_bytes(json));
    EXPECT_EQ(j["cuda_graphs"], true) << model;
    ASSERT_EQ(j["rows"].size(), 1u) << model;
    const auto& row = j["rows"][0];
    EXPECT_EQ(row["cuda_graphs"], true);
    EXPECT_EQ(row["graph_vs_eager_rel_l2"].get<double>(), 0.0) << model;
    EXPECT_EQ(row["graph_captures"], 1);
    EXPECT_EQ(row["graph_replays"], 1 + 1 + 2);  // the capturing call, --warmup, --steps
    EXPECT_EQ(row["ms_all"].size(), 2u);
  }
  const auto plain = run_ditserve({"bench", "step", "--model", "tiny", "--device", "cpu", "--latent",
                                   "2,4,4", "--warmup", "0", "--steps", "1"});
  ASSERT_EQ(plain.exit_code, 0) << plain.out;
  EXPECT_NE(plain.out.find("\"cuda_graphs\": false"), std::string::npos) << plain.out;
}

TEST(CudaGraphsCli, BenchStepRefusesWhatAReplayCannotGive) {
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{"--breakdown"}, {"--dump-dir", "/tmp/unused"}, {"--component", "vae"}}) {
    std::vector<std::string> args = {"bench", "step", "--model", "tiny", "--device", "cpu", "--cuda-graphs"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_ditserve(args);
    EXPECT_NE(r.exit_code, 0) << extra[0];
    EXPECT_NE(r.out.find("cuda-graphs"), std::string::npos) << r.out;
  }
}

TEST(CudaGraphsCli, GenerateWritesTheSameVideoWithAndWithoutGraphs) {
  TempDir dir("graphs_generate");
  std::string bytes[2];
  for (int graphs = 0; graphs < 2; ++graphs) {
    const auto out = dir / ("v" + std::to_string(graphs) + ".mp4");
    std::vector<std::string> args = {"generate", "--model", "tiny", "--prompt", "a red kite",
                                     "--frames", "5", "--steps", "4", "-o", out.string()};
    if (graphs == 1) args.push_back("--cuda-graphs");
    const auto r = run_ditserve(args);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(r.out.find("runs eagerly"), std::string::npos) << r.out;  // no failed capture
    bytes[graphs] = file_bytes(out);
  }
  EXPECT_FALSE(bytes[0].empty());
  EXPECT_EQ(bytes[0], bytes[1]);
}

}  // namespace
}  // namespace ditserve
