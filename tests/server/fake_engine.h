#pragma once
// A deterministic Engine for the server's tests: one worker thread runs jobs in
// submission order, emitting the events a real engine emits (queued, encoding, one per
// denoising step, decoding, then completed/failed/cancelled; every step and the decode
// on cpu:0), writing the state file at each step and a small output file at the end.
// `hold` keeps jobs queued until release(). A job whose prompt is "fail" fails at its
// first step.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "runtime/engine.h"
#include "tensor/error.h"

namespace ditserve::testing {

class FakeEngine : public runtime::Engine {
 public:
  struct Options {
    bool hold = false;
    double estimate_s = 1.0;
    std::chrono::milliseconds step_time{1};
  };

  explicit FakeEngine(Options options) : options_(options), worker_([this] { run(); }) {}
  FakeEngine() : FakeEngine(Options{}) {}
  ~FakeEngine() override { shutdown(); }

  std::vector<std::string> models() const override { return {"tiny"}; }

  void submit(const runtime::JobSpec& job) override {
    runtime::JobProgress queued;
    {
      const std::lock_guard lock(mutex_);
      if (stopping_) throw Error("engine: shut down");
      if (live_.count(job.id)) throw InvalidArgument("id: job " + job.id + " is already live");
      if (job.model != "tiny") throw InvalidArgument("model: unknown model '" + job.model + "'");
      if (job.request.prompt == "refuse") throw InvalidArgument("prompt: refused by the fake engine");
      live_.insert(job.id);
      submitted_.push_back(job);
      queue_.push_back(job);
      queued = progress_of(job, runtime::JobPhase::kQueued, 0);
    }
    emit(queued);
    changed_.notify_all();
  }

  bool cancel(const std::string& id) override {
    std::optional<runtime::JobProgress> cancelled;
    {
      const std::lock_guard lock(mutex_);
      if (!live_.count(id)) return false;
      for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (it->id == id) {
          cancelled = progress_of(*it, runtime::JobPhase::kCancelled, 0);
          live_.erase(id);
          queue_.erase(it);
          break;
        }
      }
      if (!cancelled) cancel_requested_.insert(id);
    }
    if (cancelled) emit(*cancelled);
    return true;
  }

  void set_listener(std::function<void(const runtime::JobProgress&)> listener) override {
    const std::lock_guard lock(mutex_);
    listener_ = std::move(listener);
  }

  runtime::EngineStats stats() const override {
    const std::lock_guard lock(mutex_);
    runtime::EngineStats s;
    s.queued = static_cast<int>(queue_.size());
    s.running = running_.empty() ? 0 : 1;
    s.devices.push_back({"cpu:0", 0.25, running_});
    return s;
  }

  double estimate_latency_s(const runtime::JobSpec& job) const override {
    if (job.model != "tiny") throw InvalidArgument("model: unknown model '" + job.model + "'");
    return options_.estimate_s;
  }

  void shutdown() override {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  // Lets `n` more queued jobs start (hold mode).
  void release(int n = 1 << 30) {
    {
      const std::lock_guard lock(mutex_);
      released_ += n;
    }
    changed_.notify_all();
  }

  // Passes `p` to the listener as the engine would, for events this fake's runs never
  // make (a decode on a group of several devices, started again after a device failed).
  void report(const runtime::JobProgress& p) { emit(p); }

  std::vector<runtime::JobSpec> submitted() const {
    const std::lock_guard lock(mutex_);
    return submitted_;
  }
  // The step each submitted job resumed from (read from its state file at start).
  std::map<std::string, int> resumed_from() const {
    const std::lock_guard lock(mutex_);
    return resumed_from_;
  }

 private:
  static runtime::JobProgress progress_of(const runtime::JobSpec& job, runtime::JobPhase phase, int step) {
    runtime::JobProgress p;
    p.id = job.id;
    p.phase = phase;
    p.step = step;
    p.total_steps = job.request.steps;
    p.dop = phase == runtime::JobPhase::kQueued ? 0 : 1;
    if (p.dop) p.devices = {"cpu:0"};
    if (phase == runtime::JobPhase::kDecoding || phase == runtime::JobPhase::kCompleted) {
      p.decode_dop = 1;
      p.decode_devices = {"cpu:0"};
    }
    p.encode_s = 0.001;
    p.denoise_s = 0.001 * step;
    p.decode_s = phase == runtime::JobPhase::kCompleted ? 0.001 : 0;
    return p;
  }

  void emit(const runtime::JobProgress& p) {
    std::function<void(const runtime::JobProgress&)> listener;
    {
      const std::lock_guard lock(mutex_);
      listener = listener_;
    }
    if (listener) listener(p);
  }

  void run() {
    while (true) {
      runtime::JobSpec job;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || (!queue_.empty() && (!options_.hold || released_ > 0)); });
        if (stopping_) return;
        job = queue_.front();
        queue_.pop_front();
        --released_;
        running_ = job.id;
      }
      execute(job);
      const std::lock_guard lock(mutex_);
      running_.clear();
      live_.erase(job.id);
    }
  }

  bool stop_or_cancel(const runtime::JobSpec& job, bool* cancelled) {
    const std::lock_guard lock(mutex_);
    *cancelled = cancel_requested_.count(job.id) > 0;
    return stopping_ || *cancelled;
  }

  void execute(const runtime::JobSpec& job) {
    int step = 0;
    if (!job.state_file.empty() && std::filesystem::exists(job.state_file)) {
      std::ifstream(job.state_file) >> step;
    }
    {
      const std::lock_guard lock(mutex_);
      resumed_from_[job.id] = step;
    }
    emit(progress_of(job, runtime::JobPhase::kEncoding, step));
    while (step < job.request.steps) {
      bool cancelled = false;
      if (stop_or_cancel(job, &cancelled)) {
        if (cancelled) {
          std::filesystem::remove(job.state_file);
          emit(progress_of(job, runtime::JobPhase::kCancelled, step));
        }
        return;  // shutdown: no terminal event, the state file stays
      }
      if (job.request.prompt == "fail") {
        runtime::JobProgress failed = progress_of(job, runtime::JobPhase::kFailed, step);
        failed.error = "fake device failure";
        emit(failed);
        return;
      }
      std::this_thread::sleep_for(options_.step_time);
      ++step;
      if (!job.state_file.empty()) std::ofstream(job.state_file) << step;
      emit(progress_of(job, runtime::JobPhase::kDenoising, step));
    }
    emit(progress_of(job, runtime::JobPhase::kDecoding, step));
    std::ofstream(job.output, std::ios::binary) << "FAKE " << job.id;
    if (!job.state_file.empty()) std::filesystem::remove(job.state_file);
    emit(progress_of(job, runtime::JobPhase::kCompleted, step));
  }

  const Options options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::function<void(const runtime::JobProgress&)> listener_;
  std::deque<runtime::JobSpec> queue_;
  std::set<std::string> live_;
  std::set<std::string> cancel_requested_;
  std::vector<runtime::JobSpec> submitted_;
  std::map<std::string, int> resumed_from_;
  std::string running_;
  int released_ = 0;
  bool stopping_ = false;
  std::thread worker_;  // last: starts after the members it uses
};

}  // namespace ditserve::testing
