#pragma once
// Shared by the engine tests: small tiny-model jobs, a listener that records every event
// and lets a test wait for one, and a scratch directory per test.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <unistd.h>

#include "pipeline/video_writer.h"
#include "runtime/engine.h"

namespace ditserve::runtime::testing {

// 5 frames of 48x32: two latent frames, a grid that 2 and 4 devices shard unevenly.
inline JobSpec small_job(const std::string& id, const std::filesystem::path& dir, int steps = 3) {
  JobSpec job;
  job.id = id;
  job.model = "tiny";
  job.request.prompt = "a paper boat floats down a small stream";
  job.request.frames = 5;
  job.request.height = 32;
  job.request.width = 48;
  job.request.steps = steps;
  job.request.seed = 7;
  job.output = dir / (id + ".mp4");
  return job;
}

// tiny-wan's defaults (UniPC, its shift and guidance, 16 fps) at 5 frames of 48x32: two
// latent frames of 4 x 6, 12 tokens.
inline JobSpec small_wan_job(const std::string& id, const std::filesystem::path& dir, int steps = 3) {
  JobSpec job = small_job(id, dir, steps);
  job.model = "tiny-wan";
  const GenerateRequest defaults = default_request(find_model("tiny-wan"));
  job.request.guidance = defaults.guidance;
  job.request.fps = defaults.fps;
  return job;
}

inline EngineOptions cpu_engine(int devices, const std::string& policy) {
  quiet_ffmpeg_logging();  // libx264 prints its settings for every video otherwise
  EngineOptions options;
  for (int i = 0; i < devices; ++i) options.devices.push_back("cpu:" + std::to_string(i));
  options.policy = policy;
  return options;
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Largest difference of two videos' bytes (decoded RGB, or Y4M files of the same shape),
// in 8-bit levels; 256 when their sizes differ or they are empty.
inline int max_level_difference(const std::string& a, const std::string& b) {
  if (a.size() != b.size() || a.empty()) return 256;
  int worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<int>(static_cast<unsigned char>(a[i])) -
                                     static_cast<unsigned char>(b[i])));
  return worst;
}

// The job's output as every frame uncompressed (Y4M), for comparing frames: H.264's lossy
// coding turns a one-level difference in a few pixels (rounding, e.g. a patch-parallel
// decode's) into differences of tens of levels (measured: 26).
inline JobSpec lossless(JobSpec job) {
  job.format = OutputFormat::kY4m;
  job.output.replace_extension(".y4m");
  return job;
}

// Records every event; tests wait for a condition on what was recorded.
class Recorder {
 public:
  std::function<void(const JobProgress&)> listener() {
    return [this](const JobProgress& p) {
      {
        const std::lock_guard lock(mu_);
        events_.push_back(p);
      }
      cv_.notify_all();
    };
  }

  // Waits until some event of job `id` satisfies `pred`; false after `timeout_s`.
  bool wait_for(const std::string& id, const std::function<bool(const JobProgress&)>& pred,
                double timeout_s = 60) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] {
      for (const JobProgress& p : events_)
        if (p.id == id && pred(p)) return true;
      return false;
    });
  }

  // The job's terminal event (kQueued with an error if none came in time).
  JobProgress wait_terminal(const std::string& id, double timeout_s = 60) {
    wait_for(id, [](const JobProgress& p) { return is_terminal(p.phase); }, timeout_s);
    const std::lock_guard lock(mu_);
    for (const JobProgress& p : events_)
      if (p.id == id && is_terminal(p.phase)) return p;
    JobProgress none;
    none.id = id;
    none.error = "no terminal event";
    return none;
  }

  std::vector<JobProgress> events(const std::string& id) const {
    const std::lock_guard lock(mu_);
    std::vector<JobProgress> out;
    for (const JobProgress& p : events_)
      if (p.id == id) out.push_back(p);
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<JobProgress> events_;
};

// A fresh directory named after the running test and process, removed at the end.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("ditserve_runtime_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" +
             std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace ditserve::runtime::testing
