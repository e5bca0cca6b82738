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
  std::vector<Job> to_purge;
  {
    const std::lock_guard lock(mutex_);
    const double now = unix_now();
    for (Job& job : store_.load_all()) {
      last_seq_ = std::max(last_seq_, job.seq);
      if (job.delete_requested) {
        // Deleted before the restart, and the process stopped before its files went: the
        // engine of this process never had it, so it goes now.
        ++report.deleted;
        to_purge.push_back(std::move(job));
        continue;
      }
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
        submitting_.insert(job.spec.id);
      }
      by_seq_[job.seq] = job.spec.id;
      jobs_[job.spec.id] = std::move(job);
    }
  }
  for (const Job& job : to_purge) purge(job);
  for (const runtime::JobSpec& spec : to_submit) {
    try {
      engine_.submit(spec);
      ++report.resubmitted;
    } catch (const std::exception& e) {
      bool deleted = false;
      {
        const std::lock_guard lock(mutex_);
        submitting_.erase(spec.id);
        const auto it = jobs_.find(spec.id);
        if (it == jobs_.end()) {
          deleted = true;  // deleted meanwhile; the engine never had it
        } else if (!is_terminal_phase(it->second.progress.phase)) {
          finish_locked(it->second, JobPhase::kFailed, std::string("re-submission after restart: ") + e.what());
          store_.put(it->second);
        }
      }
      if (deleted) settle_deleted(spec.id);
      ++report.failed;
      continue;
    }
    submitted(spec.id);
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
    submitting_.insert(s.id);
  }
  try {
    engine_.submit(s);
  } catch (const std::exception& e) {
    // Refused: the job was never accepted, so it leaves no trace.
    bool deleted = false;
    {
      const std::lock_guard lock(mutex_);
      submitting_.erase(s.id);
      const auto it = jobs_.find(s.id);
      if (it == jobs_.end()) {
        deleted = true;  // deleted meanwhile: its record goes as a deleted job's
      } else {
        store_.remove(s.id);
        if (it->second.progress.phase == JobPhase::kQueued) --queued_;
        jobs_.erase(it);
        by_seq_.erase(job.seq);
      }
    }
    if (deleted) settle_deleted(s.id);
    if (const auto* invalid = dynamic_cast<const InvalidArgument*>(&e)) throw from_invalid_argument(*invalid);
    throw;
  }
  submitted(s.id);
  {
    // Accepted, whatever a DELETE did to it since: the job as it is now, or as accepted.
    const std::lock_guard lock(mutex_);
    const auto it = jobs_.find(s.id);
    if (it != jobs_.end()) return it->second;
  }
  return job;
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

void JobService::remove(const std::string& id, JobKind kind) {
  std::optional<Job> finished;
  bool cancel_in_engine = false;
  {
    const std::lock_guard lock(mutex_);
    const auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.kind != kind)
      throw not_found(kind_param(kind), std::string("no ") + job_kind_name(kind) + " with id '" + id + "'");
    Job deleted = it->second;
    deleted.delete_requested = true;
    const bool running = !is_terminal_phase(deleted.progress.phase);
    if (running) deleted.cancel_requested = true;
    // Marked durably before anything goes: a crash from here on leaves a record that the
    // next recover() purges, never a job that comes back. A failure here changes nothing.
    store_.put(deleted);
    if (deleted.progress.phase == JobPhase::kQueued) --queued_;
    by_seq_.erase(deleted.seq);
    jobs_.erase(it);
    events_.forget(id);
    if (running) {
      // The engine may still be mid-step or writing the output: the files go when it says
      // it has let go of the job (on_progress, or a refused cancel below).
      cancel_in_engine = !submitting_.contains(id);
      deleting_.emplace(id, std::move(deleted));
    } else {
      finished = std::move(deleted);
    }
  }
  if (finished) {
    purge(*finished);
    return;
  }
  // A refused cancel means the engine is done with the job (its terminal event may still be
  // on its way, and finds the job settled): its output, if any, is already written.
  if (cancel_in_engine && !engine_.cancel(id)) settle_deleted(id);
}

void JobService::submitted(const std::string& id) {
  bool deleted = false;
  {
    const std::lock_guard lock(mutex_);
    submitting_.erase(id);
    deleted = deleting_.contains(id);
  }
  if (deleted && !engine_.cancel(id)) settle_deleted(id);
}

void JobService::settle_deleted(const std::string& id) {
  std::optional<Job> job;
  {
    const std::lock_guard lock(mutex_);
    const auto it = deleting_.find(id);
    if (it == deleting_.end()) return;
    job = std::move(it->second);
    deleting_.erase(it);
  }
  purge(*job);
}

void JobService::purge(const Job& job) noexcept {
  bool files_gone = true;
  for (const std::filesystem::path& file : {job.spec.output, job.spec.state_file}) {
    if (file.empty()) continue;
    std::error_code error;
    std::filesystem::remove(file, error);
    if (error) {
      std::fprintf(stderr, "ditserve serve: deleting %s: removing %s: %s (retried at the next start)\n",
                   job.spec.id.c_str(), file.c_str(), error.message().c_str());
      files_gone = false;
    }
  }
  if (!files_gone) return;
  try {
    store_.remove(job.spec.id);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ditserve serve: deleting %s: %s (retried at the next start)\n", job.spec.id.c_str(),
                 e.what());
  }
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
  bool deleted = false;
  {
    const std::lock_guard lock(mutex_);
    const auto it = jobs_.find(p.id);
    if (it == jobs_.end()) {
      // Deleted while the engine had it: its terminal event says the engine has let go,
      // so its files (the output it may have just written) and record go now.
      const auto gone = deleting_.find(p.id);
      if (gone == deleting_.end() || !is_terminal_phase(p.phase)) return;
      finished = std::move(gone->second);
      deleting_.erase(gone);
      finished.progress = p;
      finished.completed_at = unix_now();
      terminal = deleted = true;
    } else {
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
      // Under the lock, so that a DELETE's forget() cannot come between and leave a log.
      events_.publish(p);
    }
  }
  if (deleted) purge(finished);
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
