#pragma once
// The Engine behind make_engine(), internal to runtime/ (other layers see only engine.h).
// One class, defined by parts in files with one job each:
//   engine.cc        construction, validation, submit/cancel/stats/estimate, shutdown
//   control_loop.cc  the control thread: completions in, scheduler events, actions out
//   job_tasks.cc     the bodies of encode, step and decode tasks, and the output file
//   device_lease.cc  Lease, which holds devices for a task and counts their busy time
//   notify_loop.cc   the notifier thread that calls the listener
//
// Threads: one control thread owns the scheduler and the profile estimator (events in,
// actions out); one worker per device runs tasks (encode, the steps of a kStep action,
// decode); two output writer threads encode and write the finished videos, so a decode's
// devices are free for the next task while its file is written; one notifier thread
// calls the listener. Locks, always taken in this order:
// a job's task lock (job->mu), then device locks in ascending rank order (Lease), then
// stats_mu_; the engine lock mu_ is only taken alone or after those, never before them.
//
// A request's state lives on the device of its last step (job->state, cached there) and,
// from the end of each action, on the host (job->checkpoint). A step or decode on another
// group starts from the host copy (GenerationState::move_to); a device lost mid-action
// sends the request back to the scheduler from that copy, as the scheduler takes back the
// action's steps (or, for a decode, makes the request wait for another decode group). A
// task on a group holds every member's lock for its whole run (Lease): it drives all
// their backends from its one thread, and no other task may use them meanwhile (a text
// encode, which the scheduler does not place, waits for them).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "comm/fabric.h"
#include "pipeline/pipeline.h"
#include "runtime/device_worker.h"
#include "runtime/engine.h"
#include "runtime/first_use.h"
#include "runtime/profile_estimator.h"
#include "runtime/state_file.h"
#include "sched/scheduler.h"

namespace ditserve::runtime {

// One serving device: its backend, every model loaded on it, and the worker that runs
// its tasks.
struct Slot {
  std::unique_ptr<Backend> backend;
  std::string name;
  std::vector<std::unique_ptr<Pipeline>> pipelines;  // by model index
  std::mutex lock;        // held by the task that drives the backend
  // Under lock. Fault injection: the device fails as it starts step `fail_at_step` or
  // decode `fail_at_decode` (0: never).
  int steps_started = 0;
  int decodes_started = 0;
  int fail_at_step = 0;
  int fail_at_decode = 0;
  // Under Engine::stats_mu_.
  double busy_s = 0;
  double busy_since = -1;
  std::string job;
  std::unique_ptr<DeviceWorker> worker;
};

// A live job: its spec and the engine's view of it, shared by the control thread and the
// tasks that run it.
struct Job {
  JobSpec spec;
  int model = 0;
  ShapeKey key;
  std::optional<SavedState> resume;
  double submitted = 0;
  std::atomic<bool> cancel{false};
  // Under the engine's mu_.
  int request = -1;  // scheduler index
  JobProgress progress;
  // Under mu (held by the job's tasks, which run one at a time).
  std::mutex mu;
  std::optional<GenerationState> state;  // on slot `holder`
  int holder = -1;
  std::optional<GenerationState> checkpoint;  // host copy at the last action boundary
};

// What the control thread is told: a job arrived or was cancelled, or one of its tasks
// ended (how, and the timings the profile estimator learns from).
struct Completion {
  enum class Kind { kArrival, kCancel, kEncoded, kStepped, kDecoded, kWritten, kDeviceLost, kFailed };
  Kind kind = Kind::kArrival;
  std::shared_ptr<Job> job;
  int device = -1;
  std::string error;
  int dop = 0;
  std::vector<int> ranks;      // the devices that ran an encode, steps or a decode, leader first
  std::vector<double> step_s;  // seconds of each step run (move excluded)
  double move_s = -1;          // the state changed devices first, taking this long
  double seconds = 0;          // encode or decode
  // kDecoded: the video is being written (a kWritten completion follows, with `error` set
  // when the write failed); the job ends then, its devices at once.
  bool output_pending = false;
};

class EngineImpl final : public Engine {
 public:
  // engine.cc
  explicit EngineImpl(const EngineOptions& options);
  ~EngineImpl() override { shutdown(); }

  std::vector<std::string> models() const override { return model_names_; }
  void submit(const JobSpec& job) override;
  bool cancel(const std::string& id) override;
  void set_listener(std::function<void(const JobProgress&)> listener) override {
    const std::lock_guard lock(notify_mu_);
    listener_ = std::move(listener);
  }
  EngineStats stats() const override;
  double estimate_latency_s(const JobSpec& job) const override;
  void shutdown() override;

 private:
  using Clock = std::chrono::steady_clock;

  // device_lease.cc
  // Holds devices for a task: locks them in ascending order, counts their busy time.
  class Lease {
   public:
    Lease(EngineImpl& engine, std::vector<int> ranks, const std::string& job);
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

   private:
    EngineImpl& engine_;
    std::vector<int> ranks_;
  };

  // Seconds since loading finished; the clock of scheduler events and device stats.
  double now() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  Slot& slot(int rank) const { return *slots_[static_cast<std::size_t>(rank)]; }

  // engine.cc
  // Validation shared by submit and estimate_latency_s; returns the model index.
  int check(const JobSpec& job) const;
  Shape latent_shape(int model, const GenerateRequest& r) const;
  // Largest group a step of `model` may run on: all devices for a DiT with a
  // sequence-parallel step (STDiT3, Wan: has_group_step), else one.
  int max_dop(int model) const;
  // Largest group a decode of `key` by `model`'s VAE may run on: all devices, at most one
  // per latent row, for a VAE with a patch-parallel decode (decodes_patch_parallel), else one.
  int max_decode_dop(int model, const ShapeKey& key) const;
  // The profile's figures for `key` (estimated up to max_dop and max_decode_dop).
  sched::ShapeProfile figures(int model, const ShapeKey& key) const;  // REQUIRES: mu_ held

  // control_loop.cc
  void post(Completion c);
  void control_loop();
  void handle(Completion& c, double t);
  void dispatch(const std::vector<sched::Action>& actions);
  void finish(Job& job, JobPhase phase, const std::string& error);  // REQUIRES: mu_ held
  void update_shapes(const std::vector<int>& changed);              // REQUIRES: mu_ held
  // The profile refined from a finished task's durations (`shape`: its request's), unless
  // EngineOptions::refine_profile froze it; a device's first run of some work is left out
  // (FirstUseFilter).
  void learn(const Completion& c, int shape);                       // REQUIRES: mu_ held
  void pick_encoder();                                              // REQUIRES: mu_ held

  // notify_loop.cc
  void emit(const Job& job);  // REQUIRES: mu_ held
  void notify_loop();

  // job_tasks.cc: tasks, run on device workers.
  void run_encode(const std::shared_ptr<Job>& job, int rank);
  void run_steps(const std::shared_ptr<Job>& job, std::vector<int> ranks, int steps);
  void run_decode(const std::shared_ptr<Job>& job, std::vector<int> ranks);
  // On the output writer: the decoded video (host f32) as the job's file, then kWritten.
  void run_write(const std::shared_ptr<Job>& job, const Tensor& video);
  void write_output(const Job& job, const Tensor& video) const;

  Clock::time_point start_ = Clock::now();  // reset when loading is done
  std::vector<ModelSpec> specs_;
  std::vector<std::string> model_names_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<Fabric> fabric_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Completion> inbox_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;  // live jobs
  std::vector<std::shared_ptr<Job>> by_request_;      // scheduler index -> job
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::unique_ptr<ProfileEstimator> estimator_;
  bool refine_profile_ = true;  // EngineOptions::refine_profile
  FirstUseFilter first_uses_;   // what each device has run, for learn(); set by the constructor
  std::vector<bool> alive_;
  int encoder_ = 0;  // the rank that runs text encodes
  std::atomic<bool> stopping_{false};
  bool shut_down_ = false;

  mutable std::mutex stats_mu_;

  std::mutex notify_mu_;
  std::condition_variable notify_cv_;
  std::deque<JobProgress> notices_;
  std::function<void(const JobProgress&)> listener_;
  bool notify_stop_ = false;

  std::function<void(const JobSpec&, const Tensor&)> write_output_;  // EngineOptions'
  std::unique_ptr<DeviceWorker> output_writer_;  // runs run_write tasks, two at once
  std::thread control_;
  std::thread notifier_;
};

}  // namespace ditserve::runtime
