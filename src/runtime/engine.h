#pragma once
// The serving engine as the HTTP server (and any other front end) sees it: jobs in,
// progress events out. The engine owns the devices, the loaded models, the scheduler and
// its policy; the front end owns job identity, persistence and the wire format.
// Thread-safe: every method may be called from any thread.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/pipeline.h"

namespace ditserve::runtime {

enum class OutputFormat { kMp4, kPng, kY4m };

struct JobSpec {
  std::string id;      // unique, chosen by the front end
  std::string model;   // a name from Engine::models()
  GenerateRequest request;
  double deadline_s = std::numeric_limits<double>::infinity();  // from submission
  int priority = 0;                                              // higher first
  // The finished MP4 (kMp4), PNG of frame 0 (kPng), or every frame uncompressed (kY4m:
  // YUV4MPEG2 4:4:4, no FFmpeg needed; for tools and tests that compare frames, which
  // H.264's lossy coding would blur).
  std::filesystem::path output;
  OutputFormat format = OutputFormat::kMp4;
  // The job's durable denoising state. When the file exists at submit(), the job resumes
  // from the step it records (a restart after a crash); the engine rewrites it atomically
  // at step boundaries while the job runs and removes it when the job ends. Empty: none.
  std::filesystem::path state_file;
};

enum class JobPhase { kQueued, kEncoding, kDenoising, kDecoding, kCompleted, kFailed, kCancelled };
const char* job_phase_name(JobPhase phase);
inline bool is_terminal(JobPhase p) {
  return p == JobPhase::kCompleted || p == JobPhase::kFailed || p == JobPhase::kCancelled;
}

// One event per phase change and per finished step; the last event of a job is terminal.
struct JobProgress {
  std::string id;
  JobPhase phase = JobPhase::kQueued;
  int step = 0;         // denoising steps finished
  int total_steps = 0;
  int dop = 0;          // devices of the current or last step group
  std::vector<std::string> devices;  // that group, e.g. {"cpu:0", "cpu:1"}
  int decode_dop = 0;   // devices of the VAE decode group, once decoding started (else 0;
                        // 0 again, in an event of its own, when that group lost a device)
  std::vector<std::string> decode_devices;  // that group; the first leads and gathers the video
  double queued_s = 0;  // durations so far, seconds
  double encode_s = 0;
  double denoise_s = 0;
  double decode_s = 0;
  std::string error;    // kFailed: why
};

struct DeviceStats {
  std::string device;
  double busy_fraction = 0;  // since the engine started
  std::string job;           // running now, empty if idle
};

struct EngineStats {
  int queued = 0;   // accepted, not yet started
  int running = 0;  // encoding, denoising or decoding
  std::vector<DeviceStats> devices;
};

class Engine {
 public:
  virtual ~Engine() = default;

  virtual std::vector<std::string> models() const = 0;
  // Validates (InvalidArgument naming the field: "model", "size", "num_frames", "steps",
  // ...) and enqueues; returns at once. Throws InvalidArgument naming "id" for an id that
  // is already live.
  virtual void submit(const JobSpec& job) = 0;
  // Cancels a queued or running job (its devices are freed at the next step boundary);
  // false when the id is unknown or already terminal.
  virtual bool cancel(const std::string& id) = 0;
  // Called from engine threads, in order per job; must not block for long or call back.
  virtual void set_listener(std::function<void(const JobProgress&)> listener) = 0;
  virtual EngineStats stats() const = 0;
  // Predicted seconds from now until `job` would complete if submitted now, from the
  // scheduler's profile and the current load (for admission control; a job the engine
  // cannot take throws as submit() would).
  virtual double estimate_latency_s(const JobSpec& job) const = 0;
  // Stops taking jobs, aborts running ones at their next step boundary (their state files
  // stay, so a restart resumes them) and joins every thread. Idempotent.
  virtual void shutdown() = 0;
};

// Testing aid: device `device` fails (as a lost GPU would) when it starts its `nth`
// denoising step (kStep), or its `nth` decode, counting every decode whose group holds it
// (kDecode). The action it was running goes back to the scheduler, which runs it again on
// devices still in service; the failed device is never used again.
enum class FaultPhase { kStep, kDecode };
struct FaultInjection {
  std::string device;
  int nth = 1;
  FaultPhase phase = FaultPhase::kStep;
};

struct EngineOptions {
  // Devices to serve on ("cpu:0", "cuda:1"); empty = every GPU, or 4 CPU devices when
  // there is none.
  std::vector<std::string> devices;
  std::vector<std::string> models = {"tiny"};
  // Weights directories by model name, for models without built-in weights.
  std::vector<std::pair<std::string, std::filesystem::path>> weights;
  // Benchmarks: every model without an entry in `weights` gets seeded random weights
  // generated in memory (as `generate --random-weights`), full-size ones included.
  std::optional<std::uint64_t> random_weights;
  std::string policy = "elastic";  // sched::make_policy spec
  // Scheduler profile JSON (`ditserve profile`); empty = estimated at start-up, then
  // refined online from observed durations.
  std::filesystem::path profile;
  // false: the scheduler keeps `profile`'s figures as loaded (REQUIRES a profile); observed
  // durations refine nothing, so a policy decides on the durations `ditserve simulate`
  // uses (serve vs simulate comparisons). Shapes the profile lacks keep their start-up
  // estimates.
  bool refine_profile = true;
  std::vector<FaultInjection> faults;
  // Every device's DiT steps through a GraphedTransformer (PipelineOptions::cuda_graphs):
  // one-device steps replay a graph per shape; sequence-parallel ones stay eager.
  bool cuda_graphs = false;
  // Stores a finished job's video (host f32 [1, 3, frames, H, W]); runs on the engine's
  // output writer, after the decode's devices are released. Empty: the job's output file
  // in its format. Tests substitute their own (a slow one, say).
  std::function<void(const JobSpec&, const Tensor& video)> write_output;
};

// Loads every model on every device it may run on. Throws InvalidArgument naming the
// option ("devices", "models", "policy", "profile") that is wrong.
std::unique_ptr<Engine> make_engine(const EngineOptions& options);

}  // namespace ditserve::runtime
