// Construction (devices, models, policy, profile; every check before the slow loading),
// job validation and admission, and the rest of the public interface. The threads this
// starts are in control_loop.cc, job_tasks.cc and notify_loop.cc.
#include "runtime/engine.h"

#include <algorithm>
#include <future>
#include <utility>

#include "pipeline/video_writer.h"
#include "runtime/engine_impl.h"
#include "runtime/group_decode.h"
#include "runtime/group_step.h"
#include "tensor/error.h"

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

InvalidArgument rename_field(const InvalidArgument& e, const std::string& from, const std::string& to) {
  const std::string what = e.what();
  if (what.rfind(from + ":", 0) == 0) return InvalidArgument(to + what.substr(from.size()));
  return e;
}

}  // namespace

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
    if (options.random_weights && !weights.count(name)) specs_.back().builtin_seed = *options.random_weights;
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
    if (!options.refine_profile)
      throw InvalidArgument("refine_profile: a frozen profile needs a profile file (profile is empty)");
    base.model = model_names_.front();
    base.hardware = slots_.front()->name + " x" + std::to_string(n) + " (estimated online)";
  }
  for (const FaultInjection& f : options.faults) {
    int rank = -1;
    for (int r = 0; r < n; ++r)
      if (slots_[static_cast<std::size_t>(r)]->name == f.device) rank = r;
    if (rank < 0) throw InvalidArgument("faults: device '" + f.device + "' is not in devices");
    if (f.nth < 1) throw InvalidArgument("faults: nth must be >= 1");
    (f.phase == FaultPhase::kDecode ? slot(rank).fail_at_decode : slot(rank).fail_at_step) = f.nth;
  }

  // The slow part, after every check: each model on each device, devices in parallel
  // (a server on k GPUs starts about k times sooner). At most kParallelLoads at once: a
  // device loading random weights holds a host f32 copy of every parameter meanwhile.
  constexpr std::size_t kParallelLoads = 4;
  const auto load_slot = [&](Slot& s) {
    for (const ModelSpec& spec : specs_) {
      const auto dir = weights.count(spec.name) ? std::optional(weights.at(spec.name)) : std::nullopt;
      s.pipelines.push_back(std::make_unique<Pipeline>(spec, *s.backend, dir,
                                                       PipelineOptions{options.cuda_graphs}));
    }
  };
  for (std::size_t first = 0; first < slots_.size(); first += kParallelLoads) {
    std::vector<std::future<void>> loads;
    for (std::size_t i = first; i < std::min(slots_.size(), first + kParallelLoads); ++i)
      loads.push_back(std::async(std::launch::async, load_slot, std::ref(*slots_[i])));
    for (std::future<void>& load : loads) load.wait();  // all end before any error leaves
    for (std::future<void>& load : loads) load.get();
  }

  DevicePrior prior;
  if (!any_cpu) {
    prior.parallel_speedup = true;
    prior.step_s_per_work = 2e-9;
    prior.decode_s_per_work = 2e-9;
  }
  estimator_ = std::make_unique<ProfileEstimator>(base, prior);
  refine_profile_ = options.refine_profile;
  first_uses_ = FirstUseFilter(options.cuda_graphs ? 2 : 1);
  scheduler_ = std::make_unique<sched::Scheduler>(base, sched::ClusterConfig{n, 1}, std::move(policy));

  start_ = Clock::now();
  for (auto& s : slots_) s->worker = std::make_unique<DeviceWorker>();
  write_output_ = options.write_output;
  // Two at once: a short video is not stored behind a long one (a 720p MP4 takes seconds).
  output_writer_ = std::make_unique<DeviceWorker>(2);
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

int EngineImpl::max_decode_dop(int model, const ShapeKey& key) const {
  const Pipeline& p = *slots_.front()->pipelines[static_cast<std::size_t>(model)];
  return runtime::max_decode_dop(p.vae(), key.height / p.vae().spatial_factor(),
                                 static_cast<int>(slots_.size()));
}

sched::ShapeProfile EngineImpl::figures(int model, const ShapeKey& key) const {
  return estimator_->figures(key, max_dop(model), max_decode_dop(model, key));
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
  if (job.format != OutputFormat::kY4m && !built_with_ffmpeg())
    throw InvalidArgument("output: this build writes no MP4 or PNG (no FFmpeg)");
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
    const sched::ShapeProfile shape = figures(job->model, job->key);
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
      figures(model, {spec.model, spec.request.height, spec.request.width, spec.request.frames});
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
  if (output_writer_) output_writer_->join();  // likewise
  {
    const std::lock_guard lock(notify_mu_);
    notify_stop_ = true;
  }
  notify_cv_.notify_all();
  if (notifier_.joinable()) notifier_.join();
}

std::unique_ptr<Engine> make_engine(const EngineOptions& options) {
  return std::make_unique<EngineImpl>(options);
}

}  // namespace ditserve::runtime
