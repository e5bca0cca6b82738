#pragma once
// Shared by the server's tests: a fresh data directory, jobs to store.

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "server/job.h"

namespace ditserve::testing {

class TempDataDir {
 public:
  explicit TempDataDir(const std::string& name) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("ditserve_server_" + name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDataDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A stored job in `phase` as JobService would have written it under `data`.
inline server::Job stored_job(const std::filesystem::path& data, std::int64_t seq, runtime::JobPhase phase,
                              const std::string& id) {
  server::Job job;
  job.seq = seq;
  job.spec.id = id;
  job.spec.model = "tiny";
  job.spec.request.prompt = "prompt of " + id;
  job.spec.request.frames = 9;
  job.spec.request.width = 32;
  job.spec.request.height = 48;
  job.spec.request.steps = 4;
  job.spec.request.guidance = 5.5f;
  job.spec.request.seed = 1234567890123ull;
  job.spec.priority = 2;
  job.spec.output = data / "outputs" / (id + ".mp4");
  job.spec.state_file = data / "state" / (id + ".state");
  job.created_at = 1700000000.5 + static_cast<double>(seq);
  job.progress.id = id;
  job.progress.phase = phase;
  job.progress.total_steps = 4;
  job.progress.step = phase == runtime::JobPhase::kDenoising ? 2 : 0;
  job.progress.dop = 1;
  if (server::is_terminal_phase(phase)) job.completed_at = job.created_at + 3;
  return job;
}

}  // namespace ditserve::testing
