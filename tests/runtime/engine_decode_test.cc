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
// DoP 1 only), for both tiny VAEs. A device failing as a decode starts on it sends the
// decode to another group, with the same frames. Frames are compared losslessly (Y4M):
// H.264 turns a one-level difference of a few pixels into differences of a dozen levels
// or more.

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

std::vector<std::string> sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

// static:2 on 4 devices: a job denoises and starts its decode on {cpu:0, cpu:1}, where
// `failing` fails as the decode starts. The request goes back to the scheduler and decodes
// on {cpu:2, cpu:3} from its host copy; its frames equal those of a later job with the same
// seed that saw no failure, and the failed device runs nothing after.
void expect_decode_survives_the_failure_of(const std::string& failing) {
  const ScratchDir scratch;
  const std::filesystem::path& dir = scratch.path();
  EngineOptions options = cpu_engine(4, "static:2");
  options.faults = {{failing, 1, FaultPhase::kDecode}};
  Recorder rec;
  const auto engine = make_engine(options);
  engine->set_listener(rec.listener());
  const JobSpec faulty = lossless_job("tiny", "faulty", 7, dir);
  engine->submit(faulty);
  const JobProgress end = rec.wait_terminal("faulty");
  ASSERT_EQ(end.phase, JobPhase::kCompleted) << end.error;
  const std::vector<std::string> first_group = {"cpu:0", "cpu:1"}, other_group = {"cpu:2", "cpu:3"};
  // Its decoding events: a decode started on the first group, lost it (no group: the
  // scheduler has it again), started on the other.
  std::vector<std::vector<std::string>> decodes;
  for (const JobProgress& p : rec.events("faulty")) {
    if (p.phase != JobPhase::kDecoding) continue;
    EXPECT_EQ(p.decode_dop, static_cast<int>(p.decode_devices.size()));
    decodes.push_back(sorted(p.decode_devices));
  }
  EXPECT_EQ(decodes, (std::vector<std::vector<std::string>>{first_group, {}, other_group}));
  EXPECT_EQ(sorted(end.devices), first_group);  // every step ran before the failure
  EXPECT_EQ(end.step, 2);
  EXPECT_EQ(end.decode_dop, 2);
  EXPECT_EQ(sorted(end.decode_devices), other_group);

  JobSpec healthy = lossless_job("tiny", "healthy", 7, dir);
  engine->submit(healthy);
  const JobProgress done = rec.wait_terminal("healthy");
  ASSERT_EQ(done.phase, JobPhase::kCompleted) << done.error;
  for (const JobProgress& p : rec.events("healthy")) {
    EXPECT_EQ(std::count(p.devices.begin(), p.devices.end(), failing), 0);
    EXPECT_EQ(std::count(p.decode_devices.begin(), p.decode_devices.end(), failing), 0);
  }
  EXPECT_EQ(sorted(done.devices), other_group);
  EXPECT_EQ(sorted(done.decode_devices), other_group);
  EXPECT_LE(max_level_difference(read_bytes(faulty.output), read_bytes(healthy.output)), 1);
}

// cpu:0 leads the decode: it holds the job's denoised state, lost with it.
TEST(EngineDecode, ALeaderFailingMidDecodeSendsTheDecodeElsewhere) {
  expect_decode_survives_the_failure_of("cpu:0");
}

TEST(EngineDecode, AMemberFailingMidDecodeSendsTheDecodeElsewhere) {
  expect_decode_survives_the_failure_of("cpu:1");
}

}  // namespace
}  // namespace ditserve::runtime
