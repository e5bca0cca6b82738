#pragma once
// The server's state and operations, independent of HTTP: accepts jobs (admission,
// validation, persistence, submission to the engine), follows them through the engine's
// progress events, answers queries, deletes, and after a restart re-submits what was not
// finished. Routes (routes.h) only translate between HTTP and these calls; every failure
// is an ApiError.
//
// Data directory layout: DATA/jobs.db (job store), DATA/outputs/<id>.mp4|png (results),
// DATA/state/<id>.state (a running job's durable denoising state, owned by the engine).
// Thread-safe.

#include <cstddef>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <map>
#include <vector>

#include "runtime/engine.h"
#include "server/admission.h"
#include "server/event_hub.h"
#include "server/generation_request.h"
#include "server/job.h"
#include "server/job_store.h"
#include "server/metrics.h"

namespace ditserve::server {

struct ServiceOptions {
  std::filesystem::path data_dir = "ditserve-data";
  std::size_t max_queue = 64;  // accepted jobs not yet started; more -> 429
  RequestLimits limits;
  // What GET /v1/videos/{id}/content returns: kMp4 (H.264, needs a build with FFmpeg) or
  // kY4m (uncompressed frames, any build).
  runtime::OutputFormat video_format = runtime::OutputFormat::kMp4;
};

struct RecoveryReport {
  int completed = 0;    // finished before the restart, still served
  int resubmitted = 0;  // queued or running before the restart, given to the engine again
  int cancelled = 0;    // cancel accepted before the restart
  int failed = 0;       // failed before, or refused by the engine on re-submission
  int deleted = 0;      // deleted before the restart but not yet purged: purged now
};

struct JobPage {
  std::vector<Job> jobs;
  bool has_more = false;
};

class JobService {
 public:
  // Opens the store under options.data_dir (creating the directories) and installs itself
  // as the engine's listener. `engine` must outlive this object, and must be shut down
  // before it is destroyed.
  JobService(runtime::Engine& engine, ServiceOptions options);

  // Loads the store and re-submits unfinished jobs (their state files let the engine
  // resume them). Call once, before serving.
  RecoveryReport recover();

  // Validated parameters -> an accepted, persisted, submitted job (status queued).
  // Throws ApiError: 429 when the queue is full, 422 for reject_if_late with a deadline
  // the engine predicts it would miss, 400 when the engine refuses the job.
  Job create(const GenerationParams& params, JobKind kind);
  // 404 naming `param` for an unknown id or a job of another kind.
  Job get(const std::string& id, JobKind kind, const std::string& param = "video_id") const;
  // Jobs of `kind` in creation order ("asc") or newest first ("desc"), after the job
  // `after` when given (400 naming "after" when unknown).
  JobPage list(JobKind kind, std::size_t limit, const std::optional<std::string>& after,
               bool ascending) const;
  // Deletes the job (OpenAI's DELETE /v1/videos/{id}). It leaves the API at once: get,
  // list, output and the event stream answer as for an unknown id. A finished job's output
  // file and record are removed now; a queued or running one is cancelled in the engine,
  // and its files (an output written meanwhile included) and record are removed when the
  // engine settles it. The deletion is durable: a job deleted before a crash is purged by
  // the next recover(), never resumed. 404 naming the id for an unknown id, a job of
  // another kind, or one already deleted.
  void remove(const std::string& id, JobKind kind);
  // The finished output's path; 409 when the job is not completed, 404 when missing.
  std::filesystem::path output(const std::string& id, JobKind kind) const;

  const std::vector<std::string>& models() const { return models_; }
  const RequestLimits& limits() const { return options_.limits; }
  const EventHub& events() const { return events_; }
  std::string metrics_text() const;
  std::size_t queued() const;
  bool shutting_down() const;

  // From now on the engine's failed/cancelled events for jobs nobody cancelled mean
  // "aborted by shutdown": they are not recorded, so a restart resumes those jobs. Wakes
  // every event stream. Call before Engine::shutdown().
  void begin_shutdown();

 private:
  void on_progress(const runtime::JobProgress& p);
  std::string new_id(JobKind kind) const;
  void finish_locked(Job& job, runtime::JobPhase phase, const std::string& error);
  // The job left submitting_ after Engine::submit returned: when it was deleted meanwhile,
  // does the engine cancel remove() left undone.
  void submitted(const std::string& id);
  // Takes the job out of deleting_ and purges it; nothing when another caller already has.
  void settle_deleted(const std::string& id);
  // Removes a deleted job's output and state files, then its record (kept, marked, when a
  // file cannot be removed: the next recover() tries again). Reports failures to stderr:
  // it runs on engine threads too.
  void purge(const Job& job) noexcept;

  runtime::Engine& engine_;
  const ServiceOptions options_;
  const std::vector<std::string> models_;
  JobStore store_;
  EventHub events_;
  Metrics metrics_;
  Admission admission_;

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Job> jobs_;
  std::map<std::int64_t, std::string> by_seq_;
  // Deleted while the engine still had them (queued or running), until its terminal event
  // or its refusal to cancel says it has let go; no longer in jobs_.
  std::unordered_map<std::string, Job> deleting_;
  // In jobs_ but not yet through Engine::submit (create, recover): a DELETE meanwhile
  // leaves the engine's cancel to the submitter, which the engine would not know yet.
  std::unordered_set<std::string> submitting_;
  std::int64_t last_seq_ = 0;
  std::size_t queued_ = 0;  // jobs in phase kQueued
  bool shutting_down_ = false;
};

}  // namespace ditserve::server
