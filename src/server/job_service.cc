#include "server/job_service.h"

#include <chrono>
#include <cstdio>
#include <limits>
#include <cmath>
#include <random>

#include "server/video_object.h"

namespace ditserve::server {

using runtime::JobPhase;

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::filesystem::path prepared(const std::filesystem::path& data_dir) {
  std::filesystem::create_directories(data_dir / "outputs");
  std::filesystem::create_directories(data_dir / "state");
  return data_dir / "jobs.db";
}

const char* kind_param(JobKind kind) { return kind == JobKind::kImage ? "image_id" : "video_id"; }

}  // namespace

JobService::JobService(runtime::Engine& engine, ServiceOptions options)
    : engine_(engine),
      options_(std::move(options)),
      models_(engine.models()),
      store_(prepared(options_.data_dir)),
      admission_(options_.max_queue) {
  engine_.set_listener([this](const runtime::JobProgress& p) { on_progress(p); });
}

std::string JobService::new_id(JobKind kind) const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = kind == JobKind::kImage ? "img_" : "video_";
  for (int i = 0; i < 32; ++i) id += kHex[rng() & 15];
  return id;
}

RecoveryReport JobService::recover() {
  RecoveryReport report;
  std::vector<runtime::JobSpec> to_submit;
  {
    const std::lock_guard lock(mutex_);
    const double now = unix_now();
    for (Job& job : store_.load_all()) {
      last_seq_ = std::max(last_seq_, job.seq);
      if (!is_terminal_phase(job.progress.phase) && job.cancel_requested) {
        job.progress.phase = JobPhase::kCancelled;
        job.completed_at = now;
        store_.put(job);
      }
      if (is_terminal_phase(job.progress.phase)) {
        if (job.progress.phase == JobPhase::kCompleted) ++report.completed;
        else if (job.progress.phase == JobPhase::kCancelled) ++report.cancelled;
        else ++report.failed;
      } else {
        // The deadline still counts from the original submission.
        if (job.deadline_s)
          job.spec.deadline_s = std::max(1e-3, *job.deadline_s - (now - job.created_at));
        job.progress.phase = JobPhase::kQueued;
        ++queued_;
        to_submit.push_back(job.spec);
      }
      by_seq_[job.seq] = job.spec.id;
      jobs_[job.spec.id] = std::move(job);
    }
  }
  for (const runtime::JobSpec& spec : to_submit) {
    try {
      engine_.submit(spec);
      ++report.resubmitted;
    } catch (const std::exception& e) {
      const std::lock_guard lock(mutex_);
      Job& job = jobs_.at(spec.id);
      if (!is_terminal_phase(job.progress.phase)) {
        finish_locked(job, JobPhase::kFailed, std::string("re-submission after restart: ") + e.what());
        store_.put(job);
      }
      ++report.failed;
    }
  }
  return report;
}

Job JobService::create(const GenerationParams& params, JobKind kind) {
  Job job;
  job.kind = kind;
  runtime::JobSpec& s = job.spec;
  s.id = new_id(kind);
  s.model = params.model;
  s.request = params.request;
  s.priority = params.priority;
  if (params.deadline_s) s.deadline_s = *params.deadline_s;
  job.deadline_s = params.deadline_s;
  s.format = kind == JobKind::kImage ? runtime::OutputFormat::kPng : options_.video_format;
  const char* extension = s.format == runtime::OutputFormat::kPng   ? ".png"
                          : s.format == runtime::OutputFormat::kY4m ? ".y4m"
                                                                    : ".mp4";
  s.output = options_.data_dir / "outputs" / (s.id + extension);
  s.state_file = options_.data_dir / "state" / (s.id + ".state");
  job.progress.id = s.id;
  job.progress.total_steps = s.request.steps;

  if (params.reject_if_late) {
    double estimate = 0;
    try {
      estimate = engine_.estimate_latency_s(s);
    } catch (const InvalidArgument& e) {
      throw from_invalid_argument(e);
    }
    if (estimate > *params.deadline_s) {
      metrics_.count_rejected("deadline");
      char text[160];
      std::snprintf(text, sizeof(text),
                    "deadline_ms: predicted completion in %.0f ms exceeds the deadline of %.0f ms "
                    "(reject_if_late)",
                    estimate * 1000, *params.deadline_s * 1000);
      throw ApiError(422, "invalid_request_error", text, "deadline_ms", "deadline_unmeetable");
    }
  }
  {
    const std::lock_guard lock(mutex_);
    if (shutting_down_)
      throw ApiError(503, "server_error", "the server is shutting down", "", "shutting_down");
    try {
      admission_.check(queued_);
    } catch (const ApiError&) {
      metrics_.count_rejected("queue_full");
      throw;
    }
    job.seq = ++last_seq_;
    job.created_at = unix_now();
    store_.put(job);  // durable before the engine sees it: nothing accepted is lost
    jobs_[s.id] = job;
    by_seq_[job.seq] = s.id;
    ++queued_;
  }
  try {
    engine_.submit(s);
  } catch (const std::exception& e) {
    // Refused: the job was never accepted, so it leaves no trace.
    {
      const std::lock_guard lock(mutex_);
      store_.remove(s.id);
      if (jobs_.at(s.id).progress.phase == JobPhase::kQueued) --queued_;
      jobs_.erase(s.id);
      by_seq_.erase(job.seq);
    }
    if (const auto* invalid = dynamic_cast<const InvalidArgument*>(&e)) throw from_invalid_argument(*invalid);
    throw;
  }
  return get(s.id, kind);
}

Job JobService::get(const std::string& id, JobKind kind, const std::string& param) const {
  const std::lock_guard lock(mutex_);
  const auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.kind != kind)
    throw not_found(param, std::string("no ") + job_kind_name(kind) + " with id '" + id + "'");
  return it->second;
}

JobPage JobService::list(JobKind kind, std::size_t limit, const std::optional<std::string>& after,
                         bool ascending) const {
  const std::lock_guard lock(mutex_);
  JobPage page;
  std::int64_t start = ascending ? 0 : std::numeric_limits<std::int64_t>::max();
  if (after) {
    const auto it = jobs_.find(*after);
    if (it == jobs_.end() || it->second.kind != kind)
      throw bad_request("after", "after: no " + std::string(job_kind_name(kind)) + " with id '" + *after + "'");
    start = it->second.seq;
  }
  const auto take = [&](const std::string& id) {
    const Job& job = jobs_.at(id);
    if (job.kind != kind) return true;
    if (page.jobs.size() == limit) {
      page.has_more = true;
      return false;
    }
    page.jobs.push_back(job);
    return true;
  };
  if (ascending) {
    for (auto it = by_seq_.upper_bound(start); it != by_seq_.end(); ++it)
      if (!take(it->second)) break;
  } else {
    for (auto it = std::make_reverse_iterator(by_seq_.lower_bound(start)); it != by_seq_.rend(); ++it)
      if (!take(it->second)) break;
  }
  return page;
}

Job JobService::cancel(const std::string& id, JobKind kind) {
  {
    const std::lock_guard lock(mutex_);
    const auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.kind != kind)
      throw not_found(kind_param(kind), std::string("no ") + job_kind_name(kind) + " with id '" + id + "'");
    Job& job = it->second;
    if (is_terminal_phase(job.progress.phase))
      throw ApiError(409, "invalid_request_error",
                     std::string(kind_param(kind)) + ": " + id + " has already finished (" +
                         api_status(job.progress.phase) + "); only queued or running jobs can be cancelled",
                     kind_param(kind), "job_finished");
    if (!job.cancel_requested) {
      job.cancel_requested = true;
      store_.put(job);
    }
  }
  if (!engine_.cancel(id)) {
    // The engine no longer knows the job (it finished meanwhile, or never started after a
    // failed re-submission): settle it here unless a terminal event already did.
    const std::lock_guard lock(mutex_);
    Job& job = jobs_.at(id);
    if (!is_terminal_phase(job.progress.phase)) {
      finish_locked(job, JobPhase::kCancelled, "");
      store_.put(job);
      events_.publish(job.progress);
    }
  }
  return get(id, kind, kind_param(kind));
}

std::filesystem::path JobService::output(const std::string& id, JobKind kind) const {
  const Job job = get(id, kind, kind_param(kind));
  if (job.progress.phase != JobPhase::kCompleted)
    throw ApiError(409, "invalid_request_error",
                   std::string(kind_param(kind)) + ": " + id + " is " + api_status(job.progress.phase) +
                       "; content is available once it is completed",
                   kind_param(kind), "not_completed");
  if (!std::filesystem::exists(job.spec.output))
    throw not_found(kind_param(kind), "the output of " + id + " is missing from the data directory");
  return job.spec.output;
}

void JobService::finish_locked(Job& job, JobPhase phase, const std::string& error) {
  if (job.progress.phase == JobPhase::kQueued) --queued_;
  job.progress.phase = phase;
  job.progress.error = error;
  job.completed_at = unix_now();
}

void JobService::on_progress(const runtime::JobProgress& p) {
  Job finished;
  bool terminal = false;
  {
    const std::lock_guard lock(mutex_);
    const auto it = jobs_.find(p.id);
    if (it == jobs_.end()) return;
    Job& job = it->second;
    if (is_terminal_phase(job.progress.phase)) return;  // settled already (cancel race)
    if (shutting_down_ && !job.cancel_requested &&
        (p.phase == JobPhase::kCancelled || p.phase == JobPhase::kFailed))
      return;  // aborted by shutdown: stays unfinished in the store, resumed on restart
    const JobPhase before = job.progress.phase;
    job.progress = p;
    if (before == JobPhase::kQueued && p.phase != JobPhase::kQueued) --queued_;
    else if (before != JobPhase::kQueued && p.phase == JobPhase::kQueued) ++queued_;  // re-queued after a device failure
    terminal = is_terminal_phase(p.phase);
    if (terminal) job.completed_at = unix_now();
    if (before != p.phase) {
      try {
        store_.put(job);
      } catch (const std::exception& e) {
        // The engine's thread must not see it; the job's state is still served from memory.
        std::fprintf(stderr, "ditserve serve: %s\n", e.what());
      }
    }
    if (terminal) finished = job;
  }
  events_.publish(p);
  if (terminal) {
    metrics_.observe_finished(p, *finished.completed_at - finished.created_at, finished.deadline_s);
    if (p.phase == JobPhase::kCompleted) admission_.observe_service_s(p.encode_s + p.denoise_s + p.decode_s);
  }
}

std::size_t JobService::queued() const {
  const std::lock_guard lock(mutex_);
  return queued_;
}

bool JobService::shutting_down() const {
  const std::lock_guard lock(mutex_);
  return shutting_down_;
}

void JobService::begin_shutdown() {
  {
    const std::lock_guard lock(mutex_);
    shutting_down_ = true;
  }
  events_.close();
}

std::string JobService::metrics_text() const {
  MetricsSnapshot now;
  now.engine = engine_.stats();
  {
    const std::lock_guard lock(mutex_);
    for (const char* s : {"queued", "in_progress", "completed", "failed"}) now.requests_by_state[s] = 0;
    for (const auto& [id, job] : jobs_) {
      ++now.requests_by_state[api_status(job.progress.phase)];
      const JobPhase ph = job.progress.phase;
      // A decoding job holds its decode group (0 while a decode that lost a device waits
      // for another one: it holds nothing).
      const int dop = ph == JobPhase::kDecoding ? job.progress.decode_dop : job.progress.dop;
      if ((ph == JobPhase::kDenoising || ph == JobPhase::kDecoding || ph == JobPhase::kEncoding) && dop > 0)
        ++now.running_by_dop[dop];
    }
  }
  return metrics_.render(now);
}

}  // namespace ditserve::server
