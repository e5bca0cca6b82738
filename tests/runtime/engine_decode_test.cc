#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine_testing.h"
#include "runtime/engine.h"

// The VAE decode on the group the policy picks: with the estimated profile a static:K
// policy decodes each job patch parallel on K devices (the job's events say so), and the
// frames equal those of the same jobs decoded on one device (a profile that offers decode
// DoP 1 only), for both tiny VAEs. Frames are compared losslessly (Y4M): H.264 turns a
// one-level difference of a few pixels into differences of a dozen levels or more.

namespace ditserve::runtime {
namespace {

using testing::cpu_engine;
using testing::lossless;
using testing::max_level_difference;
using testing::read_bytes;
using testing::Recorder;
using testing::ScratchDir;

JobSpec lossless_job(const std::string& model, const std::string& id, std::uint64_t seed,
                     const std::filesystem::path& dir) {
  JobSpec job = lossless(model == "tiny-wan" ? testing::small_wan_job(id, dir, 2)
                                             : testing::small_job(id, dir, 2));
  job.request.seed = seed;
  return job;
}

// A measured-looking profile of small_job's shape whose decode runs on one device only.
std::filesystem::path one_device_decode_profile(const std::string& model,
                                                const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / (model + "-decode1.json");
  std::ofstream(path) << R"({"model": ")" << model << R"(", "shapes": [{"height": 32, "width": 48,
      "frames": 5, "step_ms": {"1": 100, "2": 110, "4": 130}, "encode_ms": 50,
      "decode_ms": {"1": 100}}]})";
  return path;
}

struct Decoded {
  JobProgress end;
  std::filesystem::path output;
};

// Submits `jobs` at once to an engine made with `options`; each one's last event.
std::vector<Decoded> run(EngineOptions options, const std::vector<JobSpec>& jobs) {
  Recorder rec;
  const auto engine = make_engine(options);
  engine->set_listener(rec.listener());
  for (const JobSpec& job : jobs) engine->submit(job);
  std::vector<Decoded> out;
  for (const JobSpec& job : jobs) out.push_back({rec.wait_terminal(job.id), job.output});
  return out;
}

void expect_group_decode_matches_one_device(const std::string& model) {
  const ScratchDir scratch;
  const std::filesystem::path& dir = scratch.path();
  for (const int k : {2, 4}) {
    SCOPED_TRACE(model + " static:" + std::to_string(k));
    const std::string policy = "static:" + std::to_string(k);
    // With 4 devices, static:2 has two groups, {cpu:0, cpu:1} and {cpu:2, cpu:3}, so two
    // jobs may decode at once (cpu:3 also runs the text encodes, which wait while a decode
    // holds it).
    std::vector<JobSpec> grouped, single;
    for (int i = 0; i < 4 / k; ++i) {
      const std::string id = model + "-" + std::to_string(k) + "-" + std::to_string(i);
      grouped.push_back(lossless_job(model, id + "-group", 7 + i, dir));
      single.push_back(lossless_job(model, id + "-one", 7 + i, dir));
    }
    EngineOptions options = cpu_engine(4, policy);
    options.models = {model};
    const std::vector<Decoded> by_group = run(options, grouped);
    options.profile = one_device_decode_profile(model, dir);
    const std::vector<Decoded> by_one = run(options, single);

    for (std::size_t i = 0; i < grouped.size(); ++i) {
      const JobProgress& g = by_group[i].end;
      const JobProgress& o = by_one[i].end;
      ASSERT_EQ(g.phase, JobPhase::kCompleted) << g.error;
      ASSERT_EQ(o.phase, JobPhase::kCompleted) << o.error;
      EXPECT_EQ(g.dop, k);
      EXPECT_EQ(o.dop, k);  // the same steps on the same groups: only the decode differs
      EXPECT_EQ(g.decode_dop, k);
      EXPECT_EQ(o.decode_dop, 1);
      EXPECT_GT(g.decode_s, 0);
      // static:K decodes on the group the job denoised on (the state's holder leading).
      std::vector<std::string> decoded_on = g.decode_devices, denoised_on = g.devices;
      std::sort(decoded_on.begin(), decoded_on.end());
      std::sort(denoised_on.begin(), denoised_on.end());
      EXPECT_EQ(decoded_on, denoised_on);
      EXPECT_LE(max_level_difference(read_bytes(by_group[i].output), read_bytes(by_one[i].output)), 1)
          << grouped[i].id;
    }
  }
}

TEST(EngineDecode, OpenSoraGroupDecodesGiveTheOneDeviceFrames) {
  expect_group_decode_matches_one_device("tiny");
}

TEST(EngineDecode, WanGroupDecodesGiveTheOneDeviceFrames) {
  expect_group_decode_matches_one_device("tiny-wan");
}

}  // namespace
}  // namespace ditserve::runtime
