#include "runtime/engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "comm/fabric.h"
#include "kernels/copy.h"
#include "pipeline/video_writer.h"
#include "runtime/device_worker.h"
#include "runtime/group_step.h"
#include "runtime/profile_estimator.h"
#include "runtime/state_file.h"
#include "sched/error.h"
#include "sched/scheduler.h"
#include "tensor/error.h"

// Threads: one control thread owns the scheduler and the profile estimator (events in,
// actions out); one worker per device runs tasks (encode, the steps of a kStep action,
// decode); one notifier thread calls the listener. Locks, always taken in this order:
// a job's task lock (job->mu), then device locks in ascending rank order (Lease), then
// stats_mu_; the engine lock mu_ is only taken alone or after those, never before them.
//
// A request's state lives on the device of its last step (job->state, cached there) and,
// from the end of each action, on the host (job->checkpoint). A step on another group
// starts from the host copy (GenerationState::move_to); a device lost mid-action sends
// the request back to the scheduler from that copy, as the scheduler takes back the
// action's steps.

namespace ditserve::runtime {

const char* job_phase_name(JobPhase phase) {
  switch (phase) {
    case JobPhase::kQueued: return "queued";
    case JobPhase::kEncoding: return "encoding";
    case JobPhase::kDenoising: return "denoising";
    case JobPhase::kDecoding: return "decoding";
    case JobPhase::kCompleted: return "completed";
    case JobPhase::kFailed: return "failed";
    case JobPhase::kCancelled: return "cancelled";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;

// Thrown when a device fails (fault injection) as a step starts on it.
struct DeviceLostError {
  int rank = -1;
};

struct Slot {
  std::unique_ptr<Backend> backend;
  std::string name;
  std::vector<std::unique_ptr<Pipeline>> pipelines;  // by model index
  std::mutex lock;        // held by the task that drives the backend
  int steps_started = 0;  // under lock
  int fail_at = 0;        // fault injection: fails as it starts this step (0: never)
  // Under Engine::stats_mu_.
  double busy_s = 0;
  double busy_since = -1;
  std::string job;
  std::unique_ptr<DeviceWorker> worker;
};

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

struct Completion {
  enum class Kind { kArrival, kCancel, kEncoded, kStepped, kDecoded, kDeviceLost, kFailed };
  Kind kind = Kind::kArrival;
  std::shared_ptr<Job> job;
  int device = -1;
  std::string error;
  int dop = 0;
  std::vector<double> step_s;  // seconds of each step run (move excluded)
  double move_s = -1;          // the state changed devices first, taking this long
  double seconds = 0;          // encode or decode
};

std::unique_ptr<Backend> host_backend() { return make_backend(Device::cpu()); }

GenerationState host_copy(const GenerationState& state, Backend& from) {
  GenerationState copy = state;
  const std::unique_ptr<Backend> host = host_backend();
  copy.move_to(from, *host);
  return copy;
}

GenerationState device_copy(const GenerationState& host_state, Backend& to) {
  GenerationState copy = host_state;
  const std::unique_ptr<Backend> host = host_backend();
  copy.move_to(*host, to);
  return copy;
}

InvalidArgument rename_field(const InvalidArgument& e, const std::string& from, const std::string& to) {
  const std::string what = e.what();
  if (what.rfind(from + ":", 0) == 0) return InvalidArgument(to + what.substr(from.size()));
  return e;
}

class EngineImpl final : public Engine {
 public:
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

  double now() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  Slot& slot(int rank) const { return *slots_[static_cast<std::size_t>(rank)]; }

  // Validation shared by submit and estimate_latency_s; returns the model index.
  int check(const JobSpec& job) const;
  Shape latent_shape(int model, const GenerateRequest& r) const;
  // Largest group a step of `model` may run on: all devices for a DiT with a
  // sequence-parallel step (STDiT3, Wan: has_group_step), else one.
  int max_dop(int model) const;

  void post(Completion c);
  void emit(const Job& job);  // REQUIRES: mu_ held
  void control_loop();
  void notify_loop();
  void handle(Completion& c, double t);
  void dispatch(const std::vector<sched::Action>& actions);
  void finish(Job& job, JobPhase phase, const std::string& error);  // REQUIRES: mu_ held
  void update_shapes(const std::vector<int>& changed);              // REQUIRES: mu_ held
  void pick_encoder();                                              // REQUIRES: mu_ held

  // Tasks, run on device workers.
  void run_encode(const std::shared_ptr<Job>& job, int rank);
  void run_steps(const std::shared_ptr<Job>& job, std::vector<int> ranks, int steps);
  void run_decode(const std::shared_ptr<Job>& job, std::vector<int> ranks);
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

  std::thread control_;
  std::thread notifier_;
};

EngineImpl::Lease::Lease(EngineImpl& engine, std::vector<int> ranks, const std::string& job)
    : engine_(engine), ranks_(std::move(ranks)) {
  std::sort(ranks_.begin(), ranks_.end());
  for (int r : ranks_) engine_.slot(r).lock.lock();
  const double t = engine_.now();
  const std::lock_guard lock(engine_.stats_mu_);
  for (int r : ranks_) {
    engine_.slot(r).busy_since = t;
    engine_.slot(r).job = job;
  }
}

EngineImpl::Lease::~Lease() {
  const double t = engine_.now();
  {
    const std::lock_guard lock(engine_.stats_mu_);
    for (int r : ranks_) {
      Slot& s = engine_.slot(r);
      s.busy_s += t - s.busy_since;
      s.busy_since = -1;
      s.job.clear();
    }
  }
  for (auto it = ranks_.rbegin(); it != ranks_.rend(); ++it) engine_.slot(*it).lock.unlock();
}

EngineImpl::EngineImpl(const EngineOptions& options) {
  // Devices.
  std::vector<std::string> names = options.devices;
  if (names.empty()) {
    const int gpus = cuda_device_count();
    for (int i = 0; i < (gpus > 0 ? gpus : 4); ++i)
      names.push_back((gpus > 0 ? Device::cuda(i) : Device::cpu(i)).str());
  }
  std::vector<Backend*> backends;
  bool any_cpu = false;
  for (const std::string& name : names) {
    auto s = std::make_unique<Slot>();
    try {
      s->backend = make_backend(Device::parse(name));
    } catch (const Error& e) {
      throw InvalidArgument("devices: '" + name + "': " + e.what());
    }
    s->name = s->backend->device().str();
    for (const auto& other : slots_)
      if (other->name == s->name) throw InvalidArgument("devices: '" + name + "' is listed twice");
    any_cpu = any_cpu || s->backend->device().is_cpu();
    backends.push_back(s->backend.get());
    slots_.push_back(std::move(s));
  }
  const int n = static_cast<int>(slots_.size());
  fabric_ = std::make_unique<Fabric>(backends);
  alive_.assign(static_cast<std::size_t>(n), true);
  encoder_ = n - 1;  // policies fill devices from the lowest id; encodes go the other end

  // Models (loaded below, once per device).
  if (options.models.empty()) throw InvalidArgument("models: at least one model is required");
  std::map<std::string, std::filesystem::path> weights;
  for (const auto& [model, dir] : options.weights) {
    if (std::find(options.models.begin(), options.models.end(), model) == options.models.end())
      throw InvalidArgument("weights: model '" + model + "' is not in models");
    weights[model] = dir;
  }
  for (const std::string& name : options.models) {
    if (std::find(model_names_.begin(), model_names_.end(), name) != model_names_.end())
      throw InvalidArgument("models: '" + name + "' is listed twice");
    try {
      specs_.push_back(find_model(name));
    } catch (const InvalidArgument& e) {
      throw rename_field(e, "model", "models");
    }
    model_names_.push_back(name);
  }
  // Scheduler, policy and profile.
  std::unique_ptr<sched::Policy> policy;
  try {
    policy = sched::make_policy(options.policy, sched::PolicyOptions{});
    policy->check(sched::Profile{}, n);
  } catch (const std::invalid_argument& e) {
    throw InvalidArgument(std::string("policy: ") + e.what());
  }
  sched::Profile base;
  if (!options.profile.empty()) {
    try {
      base = sched::load_profile(options.profile.string());
      base.check_fits(n);
      policy->check(base, n);
    } catch (const std::invalid_argument& e) {
      throw InvalidArgument(std::string("profile: ") + e.what());
    }
  } else {
    base.model = model_names_.front();
    base.hardware = slots_.front()->name + " x" + std::to_string(n) + " (estimated online)";
  }
  for (const FaultInjection& f : options.faults) {
    int rank = -1;
    for (int r = 0; r < n; ++r)
      if (slots_[static_cast<std::size_t>(r)]->name == f.device) rank = r;
    if (rank < 0) throw InvalidArgument("faults: device '" + f.device + "' is not in devices");
    if (f.after_steps < 1) throw InvalidArgument("faults: after_steps must be >= 1");
    slot(rank).fail_at = f.after_steps;
  }

  // The slow part, after every check: each model on each device.
  for (const auto& s : slots_) {
    for (const ModelSpec& spec : specs_) {
      const auto dir = weights.count(spec.name) ? std::optional(weights.at(spec.name)) : std::nullopt;
      s->pipelines.push_back(std::make_unique<Pipeline>(spec, *s->backend, dir));
    }
  }

  DevicePrior prior;
  if (!any_cpu) {
    prior.parallel_speedup = true;
    prior.step_s_per_work = 2e-9;
    prior.decode_s_per_work = 2e-9;
  }
  estimator_ = std::make_unique<ProfileEstimator>(base, prior);
  scheduler_ = std::make_unique<sched::Scheduler>(base, sched::ClusterConfig{n, 1}, std::move(policy));

  start_ = Clock::now();
  for (auto& s : slots_) s->worker = std::make_unique<DeviceWorker>();
  control_ = std::thread([this] { control_loop(); });
  notifier_ = std::thread([this] { notify_loop(); });
}

Shape EngineImpl::latent_shape(int model, const GenerateRequest& r) const {
  const Pipeline& p = *slots_.front()->pipelines[static_cast<std::size_t>(model)];
  const std::int64_t f = p.vae().spatial_factor();
  return {1, p.transformer().latent_channels(), p.vae().latent_frames(r.frames), r.height / f,
          r.width / f};
}

int EngineImpl::max_dop(int model) const {
  const Pipeline& p = *slots_.front()->pipelines[static_cast<std::size_t>(model)];
  return has_group_step(p.transformer()) ? static_cast<int>(slots_.size()) : 1;
}

int EngineImpl::check(const JobSpec& job) const {
  if (job.id.empty()) throw InvalidArgument("id: must not be empty");
  const auto it = std::find(model_names_.begin(), model_names_.end(), job.model);
  if (it == model_names_.end()) {
    std::string known;
    for (const std::string& m : model_names_) known += (known.empty() ? "" : ", ") + m;
    throw InvalidArgument("model: '" + job.model + "' is not served here (models: " + known + ")");
  }
  const int model = static_cast<int>(it - model_names_.begin());
  const ModelSpec& spec = specs_[static_cast<std::size_t>(model)];
  try {
    validate_request(spec, job.request);
  } catch (const InvalidArgument& e) {
    throw rename_field(e, "frames", "num_frames");
  }
  const Tokenizer& tokenizer = slots_.front()->pipelines[static_cast<std::size_t>(model)]->tokenizer();
  tokenizer.encode(job.request.prompt);
  // Checked here so an over-long negative prompt is refused at submit, not at encode.
  if (spec.is_wan() && !job.request.negative_prompt.empty()) {
    try {
      tokenizer.encode(job.request.negative_prompt);
    } catch (const InvalidArgument& e) {
      throw rename_field(e, "prompt", "negative_prompt");
    }
  }
  if (!(job.deadline_s > 0)) throw InvalidArgument("deadline_s: must be > 0");
  if (job.output.empty()) throw InvalidArgument("output: a path is required");
  if (!built_with_ffmpeg()) throw InvalidArgument("output: this build writes no MP4 or PNG (no FFmpeg)");
  if (job.format == OutputFormat::kMp4 && (job.request.width % 2 != 0 || job.request.height % 2 != 0))
    throw InvalidArgument("size: an MP4 needs an even width and height");
  return model;
}

void EngineImpl::submit(const JobSpec& spec) {
  const int model = check(spec);
  auto job = std::make_shared<Job>();
  job->spec = spec;
  job->model = model;
  job->key = {spec.model, spec.request.height, spec.request.width, spec.request.frames};
  if (!spec.state_file.empty() && std::filesystem::exists(spec.state_file))
    job->resume = load_state(spec.state_file, spec.model, spec.request, latent_shape(model, spec.request));
  const std::lock_guard lock(mu_);
  if (shut_down_) throw Error("engine: shut down, no more jobs are taken");
  if (jobs_.count(spec.id)) throw InvalidArgument("id: job '" + spec.id + "' is already live");
  job->submitted = now();
  job->progress.id = spec.id;
  job->progress.phase = JobPhase::kQueued;
  job->progress.total_steps = spec.request.steps;
  job->progress.step = job->resume ? job->resume->step : 0;
  jobs_[spec.id] = job;
  emit(*job);
  Completion c;
  c.kind = Completion::Kind::kArrival;
  c.job = job;
  inbox_.push_back(std::move(c));
  cv_.notify_one();
}

bool EngineImpl::cancel(const std::string& id) {
  const std::lock_guard lock(mu_);
  const auto it = jobs_.find(id);
  if (it == jobs_.end() || is_terminal(it->second->progress.phase) || it->second->cancel) return false;
  it->second->cancel = true;
  Completion c;
  c.kind = Completion::Kind::kCancel;
  c.job = it->second;
  inbox_.push_back(std::move(c));
  cv_.notify_one();
  return true;
}

EngineStats EngineImpl::stats() const {
  EngineStats out;
  {
    const std::lock_guard lock(mu_);
    for (const auto& [id, job] : jobs_) {
      const JobPhase p = job->progress.phase;
      if (p == JobPhase::kQueued) ++out.queued;
      else if (!is_terminal(p)) ++out.running;
    }
  }
  const double t = now();
  const std::lock_guard lock(stats_mu_);
  for (const auto& s : slots_) {
    DeviceStats d;
    d.device = s->name;
    const double busy = s->busy_s + (s->busy_since >= 0 ? t - s->busy_since : 0.0);
    d.busy_fraction = t > 0 ? std::clamp(busy / t, 0.0, 1.0) : 0.0;
    d.job = s->job;
    out.devices.push_back(std::move(d));
  }
  return out;
}

double EngineImpl::estimate_latency_s(const JobSpec& spec) const {
  const int model = check(spec);
  const std::lock_guard lock(mu_);
  if (jobs_.count(spec.id)) throw InvalidArgument("id: job '" + spec.id + "' is already live");
  const int devices = std::max<int>(1, static_cast<int>(std::count(alive_.begin(), alive_.end(), true)));
  // Work ahead of it, spread over the devices, then its own run at its optimal DoP.
  double backlog = 0;
  for (const auto& [id, job] : jobs_) {
    const sched::ShapeProfile shape = estimator_->figures(job->key, max_dop(job->model));
    int steps_left = job->spec.request.steps - job->progress.step;
    bool encoded = false;
    if (job->request >= 0) {
      const sched::RequestState& r = scheduler_->state().requests[static_cast<std::size_t>(job->request)];
      if (r.terminal()) continue;
      steps_left = r.steps_left() + r.pending_steps;
      encoded = r.phase != sched::Phase::kQueued && r.phase != sched::Phase::kEncoding;
    }
    backlog += (encoded ? 0.0 : shape.encode_s) + steps_left * shape.step(1) + shape.decode(1);
  }
  const sched::ShapeProfile shape =
      estimator_->figures({spec.model, spec.request.height, spec.request.width, spec.request.frames},
                          max_dop(model));
  const int dop = shape.optimal_dop(sched::kDefaultMinGain, devices);
  return backlog / devices + shape.encode_s + spec.request.steps * shape.step(dop) +
         shape.decode(shape.decode_dop_at_most(1));
}

void EngineImpl::shutdown() {
  {
    const std::lock_guard lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
    stopping_ = true;
  }
  cv_.notify_all();
  if (control_.joinable()) control_.join();
  for (auto& s : slots_)
    if (s->worker) s->worker->join();  // queued tasks see stopping_ and return at once
  {
    const std::lock_guard lock(notify_mu_);
    notify_stop_ = true;
  }
  notify_cv_.notify_all();
  if (notifier_.joinable()) notifier_.join();
}

void EngineImpl::post(Completion c) {
  {
    const std::lock_guard lock(mu_);
    inbox_.push_back(std::move(c));
  }
  cv_.notify_one();
}

void EngineImpl::emit(const Job& job) {
  {
    const std::lock_guard lock(notify_mu_);
    notices_.push_back(job.progress);
  }
  notify_cv_.notify_one();
}

void EngineImpl::notify_loop() {
  std::unique_lock lock(notify_mu_);
  for (;;) {
    notify_cv_.wait(lock, [&] { return notify_stop_ || !notices_.empty(); });
    if (notices_.empty()) return;
    const JobProgress p = std::move(notices_.front());
    notices_.pop_front();
    const auto listener = listener_;
    lock.unlock();
    if (listener) listener(p);
    lock.lock();
  }
}

void EngineImpl::control_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    const auto ready = [&] { return stopping_ || !inbox_.empty(); };
    const double wake = scheduler_->wake_at();
    if (std::isfinite(wake)) {
      const auto at = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wake));
      cv_.wait_until(lock, at, ready);
    } else {
      cv_.wait(lock, ready);
    }
    if (stopping_) return;
    std::deque<Completion> batch;
    batch.swap(inbox_);
    const double t = now();
    for (Completion& c : batch) {
      try {
        handle(c, t);
      } catch (const std::exception& e) {
        if (!is_terminal(c.job->progress.phase)) finish(*c.job, JobPhase::kFailed, e.what());
      }
    }
    try {
      if (t >= scheduler_->wake_at()) {
        sched::Event tick;
        tick.kind = sched::EventKind::kTick;
        tick.time = t;
        scheduler_->on_event(tick);
      }
      dispatch(scheduler_->schedule());
    } catch (const std::exception& e) {
      // A broken scheduler contract: fail what is left rather than hang.
      std::fprintf(stderr, "ditserve engine: scheduler error: %s\n", e.what());
      for (auto& [id, job] : std::map(jobs_)) finish(*job, JobPhase::kFailed, e.what());
    }
  }
}

void EngineImpl::update_shapes(const std::vector<int>& changed) {
  for (int i : changed) scheduler_->update_shape(i, estimator_->profile().shapes[static_cast<std::size_t>(i)]);
}

void EngineImpl::pick_encoder() {
  for (int r = static_cast<int>(alive_.size()) - 1; r >= 0; --r)
    if (alive_[static_cast<std::size_t>(r)]) {
      encoder_ = r;
      return;
    }
}

void EngineImpl::handle(Completion& c, double t) {
  Job& job = *c.job;
  if (is_terminal(job.progress.phase)) return;
  using Kind = Completion::Kind;
  sched::Event e;
  e.time = t;
  e.request = job.request;
  // Ends a request that sits at a boundary (it holds no device) as cancelled.
  const auto cancel_now = [&] {
    scheduler_->cancel(job.request, "cancelled");
    finish(job, JobPhase::kCancelled, "");
  };
  const int shape = job.request >= 0 ? scheduler_->state().requests[static_cast<std::size_t>(job.request)].spec.shape : -1;
  switch (c.kind) {
    case Kind::kArrival: {
      int index = estimator_->find(job.key);
      if (index < 0) {
        index = scheduler_->add_shape(estimator_->figures(job.key, max_dop(job.model)));
        estimator_->add(job.key, max_dop(job.model));
      }
      e.kind = sched::EventKind::kArrival;
      e.spec.id = static_cast<sched::RequestId>(by_request_.size());
      e.spec.shape = index;
      const int done = job.resume ? job.resume->step : 0;
      e.spec.steps = std::max(1, job.spec.request.steps - done);  // a finished state still decodes
      e.spec.deadline = job.submitted + job.spec.deadline_s;
      e.spec.priority = job.spec.priority;
      job.request = scheduler_->on_event(e);
      by_request_.push_back(c.job);
      return;
    }
    case Kind::kCancel: {
      const sched::Phase p = scheduler_->state().requests[static_cast<std::size_t>(job.request)].phase;
      // A request running an action is ended when the action returns.
      if (p == sched::Phase::kQueued || p == sched::Phase::kReady || p == sched::Phase::kAwaitDecode)
        cancel_now();
      return;
    }
    case Kind::kEncoded:
      if (c.seconds > 0) update_shapes(estimator_->observe_encode(shape, c.seconds));
      e.kind = sched::EventKind::kEncodeDone;
      scheduler_->on_event(e);
      if (job.cancel) return cancel_now();
      job.progress.phase = JobPhase::kDenoising;
      job.progress.encode_s = c.seconds;
      emit(job);
      return;
    case Kind::kStepped:
      for (double s : c.step_s) update_shapes(estimator_->observe_step(shape, c.dop, s));
      if (c.move_s >= 0) update_shapes(estimator_->observe_move(shape, c.move_s));
      e.kind = sched::EventKind::kStepsDone;
      scheduler_->on_event(e);
      if (job.cancel) cancel_now();
      return;
    case Kind::kDecoded:
      if (c.seconds > 0) update_shapes(estimator_->observe_decode(shape, c.seconds));
      e.kind = sched::EventKind::kDecodeDone;
      scheduler_->on_event(e);
      finish(job, job.cancel ? JobPhase::kCancelled : JobPhase::kCompleted, "");
      return;
    case Kind::kDeviceLost:
      e.kind = sched::EventKind::kDeviceLost;
      e.device = c.device;
      e.for_good = true;  // nothing brings a device back: waiting for it would hang its jobs
      scheduler_->on_event(e);
      alive_[static_cast<std::size_t>(c.device)] = false;
      if (encoder_ == c.device) pick_encoder();
      if (std::find(alive_.begin(), alive_.end(), true) == alive_.end()) {
        for (const sched::Action& a : scheduler_->reject_all("every device is lost"))
          if (const std::shared_ptr<Job> other = by_request_[static_cast<std::size_t>(a.request)])
            finish(*other, JobPhase::kFailed, a.reason);
        return;
      }
      if (job.cancel) cancel_now();
      return;
    case Kind::kFailed: {
      const sched::Phase p = scheduler_->state().requests[static_cast<std::size_t>(job.request)].phase;
      e.kind = p == sched::Phase::kEncoding   ? sched::EventKind::kEncodeDone
               : p == sched::Phase::kStepping ? sched::EventKind::kStepsDone
                                              : sched::EventKind::kDecodeDone;
      scheduler_->on_event(e);
      if (p != sched::Phase::kDecoding) scheduler_->cancel(job.request, "failed: " + c.error);
      finish(job, JobPhase::kFailed, c.error);
      return;
    }
  }
}

void EngineImpl::dispatch(const std::vector<sched::Action>& actions) {
  for (const sched::Action& a : actions) {
    const std::shared_ptr<Job> job = by_request_[static_cast<std::size_t>(a.request)];
    if (!job) continue;  // the engine ended it already
    switch (a.kind) {
      case sched::ActionKind::kEncode: {
        const int rank = encoder_;
        slot(rank).worker->post([this, job, rank] { run_encode(job, rank); });
        break;
      }
      case sched::ActionKind::kStep:
        slot(a.devices.front()).worker->post(
            [this, job, ranks = a.devices, steps = a.steps] { run_steps(job, ranks, steps); });
        break;
      case sched::ActionKind::kDecode:
        slot(a.devices.front()).worker->post([this, job, ranks = a.devices] { run_decode(job, ranks); });
        break;
      case sched::ActionKind::kPreempt:
        break;  // its state stays cached on its device; the host copy is current
      case sched::ActionKind::kReject:
        if (!is_terminal(job->progress.phase))
          finish(*job, job->cancel ? JobPhase::kCancelled : JobPhase::kFailed, a.reason);
        break;
    }
  }
}

void EngineImpl::finish(Job& job, JobPhase phase, const std::string& error) {
  job.progress.phase = phase;
  job.progress.error = error;
  if (!job.spec.state_file.empty()) {
    std::error_code ignored;
    std::filesystem::remove(job.spec.state_file, ignored);
  }
  emit(job);
  const auto it = jobs_.find(job.spec.id);
  if (it != jobs_.end() && it->second.get() == &job) jobs_.erase(it);
  // Its tensors go with the last task that still holds it.
  if (job.request >= 0) by_request_[static_cast<std::size_t>(job.request)].reset();
}

void EngineImpl::run_encode(const std::shared_ptr<Job>& job, int rank) {
  if (stopping_) return;
  const std::lock_guard task(job->mu);
  Completion done;
  done.kind = Completion::Kind::kEncoded;
  done.job = job;
  try {
    if (!job->cancel) {
      {
        const std::lock_guard lock(mu_);
        job->progress.phase = JobPhase::kEncoding;
        job->progress.queued_s = now() - job->submitted;
        emit(*job);
      }
      Slot& s = slot(rank);
      Pipeline& pipeline = *s.pipelines[static_cast<std::size_t>(job->model)];
      const Lease lease(*this, {rank}, job->spec.id);
      const double t0 = now();
      GenerationState state = pipeline.start(
          job->spec.request, pipeline.encode(job->spec.request.prompt, job->spec.request.negative_prompt));
      if (job->resume) state = resume_state(*job->resume, state, *s.backend);
      job->checkpoint = host_copy(state, *s.backend);
      job->state = std::move(state);
      job->holder = rank;
      done.seconds = now() - t0;
    }
    if (!job->resume && !job->spec.state_file.empty() && job->checkpoint)
      save_state(job->spec.state_file, job->spec.model, job->spec.request, *job->checkpoint);
  } catch (const std::exception& e) {
    done.kind = Completion::Kind::kFailed;
    done.error = e.what();
  }
  post(std::move(done));
}

void EngineImpl::run_steps(const std::shared_ptr<Job>& job, std::vector<int> ranks, int steps) {
  if (stopping_) return;
  const std::lock_guard task(job->mu);
  Completion done;
  done.kind = Completion::Kind::kStepped;
  done.job = job;
  done.dop = static_cast<int>(ranks.size());
  try {
    // The device holding the state leads the group, so the state need not move.
    const auto held = std::find(ranks.begin(), ranks.end(), job->holder);
    if (held != ranks.end()) std::rotate(ranks.begin(), held, held + 1);
    const int leader = ranks.front();
    Backend& be = *slot(leader).backend;
    std::vector<DiffusionTransformer*> members;
    std::vector<std::string> names;
    for (int r : ranks) {
      members.push_back(&slot(r).pipelines[static_cast<std::size_t>(job->model)]->transformer());
      names.push_back(slot(r).name);
    }
    const DeviceGroup group{ranks};
    std::optional<GenerationState> latest;  // host copy after the last step
    for (int i = 0; i < steps; ++i) {
      if (stopping_) return;  // shutdown: the state file stays for a restart
      if (job->cancel || (job->state ? *job->state : *job->checkpoint).done()) break;
      double step_s = 0;
      {
        const Lease lease(*this, ranks, job->spec.id);
        for (int r : ranks)
          if (++slot(r).steps_started == slot(r).fail_at) throw DeviceLostError{r};
        double t0 = now();
        if (job->holder != leader) {
          job->state = device_copy(*job->checkpoint, be);
          job->holder = leader;
          be.synchronize();
          const double t1 = now();
          done.move_s = t1 - t0;
          t0 = t1;
        }
        group_step(*fabric_, group, members, *job->state);
        latest = host_copy(*job->state, be);  // waits for the device
        step_s = now() - t0;
      }
      done.step_s.push_back(step_s);
      const int index = static_cast<int>(latest->step_index());
      if (!job->spec.state_file.empty())
        save_state(job->spec.state_file, job->spec.model, job->spec.request, *latest);
      const std::lock_guard lock(mu_);
      job->progress.phase = JobPhase::kDenoising;
      job->progress.step = index;
      job->progress.dop = static_cast<int>(ranks.size());
      job->progress.devices = names;
      job->progress.denoise_s += step_s + (i == 0 && done.move_s > 0 ? done.move_s : 0.0);
      emit(*job);
    }
    if (latest) job->checkpoint = std::move(latest);
  } catch (const DeviceLostError& lost) {
    // What ran on the lost device is gone: the scheduler takes the action's steps back,
    // and the request restarts them from the host copy made before the action.
    job->state.reset();
    job->holder = -1;
    done.kind = Completion::Kind::kDeviceLost;
    done.device = lost.rank;
    done.step_s.clear();
    const std::lock_guard lock(mu_);
    job->progress.step = static_cast<int>(job->checkpoint->step_index());
  } catch (const std::exception& e) {
    done.kind = Completion::Kind::kFailed;
    done.error = e.what();
  }
  post(std::move(done));
}

void EngineImpl::run_decode(const std::shared_ptr<Job>& job, std::vector<int> ranks) {
  if (stopping_) return;
  const std::lock_guard task(job->mu);
  Completion done;
  done.kind = Completion::Kind::kDecoded;
  done.job = job;
  try {
    if (!job->cancel) {
      const int rank = std::find(ranks.begin(), ranks.end(), job->holder) != ranks.end() ? job->holder : ranks.front();
      {
        const std::lock_guard lock(mu_);
        job->progress.phase = JobPhase::kDecoding;
        emit(*job);
      }
      Tensor video;
      {
        Slot& s = slot(rank);
        const Lease lease(*this, {rank}, job->spec.id);
        const double t0 = now();
        const GenerationState state = job->holder == rank ? *job->state : device_copy(*job->checkpoint, *s.backend);
        video = s.pipelines[static_cast<std::size_t>(job->model)]->decode(state);
        done.seconds = now() - t0;
        if (job->holder == rank) job->state.reset();  // freed by the thread driving its device
      }
      if (stopping_) return;
      if (!job->cancel) write_output(*job, video);
      const std::lock_guard lock(mu_);
      job->progress.decode_s = done.seconds;
    }
  } catch (const std::exception& e) {
    done.kind = Completion::Kind::kFailed;
    done.error = e.what();
  }
  post(std::move(done));
}

void EngineImpl::write_output(const Job& job, const Tensor& video) const {
  RgbFrames frames = to_rgb8(video);
  if (job.spec.format == OutputFormat::kPng) {
    frames.frames = 1;
    frames.pixels.resize(static_cast<std::size_t>(frames.height * frames.width * 3));
    write_png(job.spec.output, frames);
  } else {
    write_mp4(job.spec.output, frames, job.spec.request.fps);
  }
}

}  // namespace

std::unique_ptr<Engine> make_engine(const EngineOptions& options) {
  return std::make_unique<EngineImpl>(options);
}

}  // namespace ditserve::runtime
