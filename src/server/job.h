#pragma once
// One accepted request as the server keeps it: what was asked (the engine's JobSpec plus
// the API's view of it) and where it stands. Stored in the job store; shown as a video
// object (video_object.h).

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"

namespace ditserve::server {

enum class JobKind { kVideo, kImage };

struct Job {
  std::int64_t seq = 0;  // creation order, unique; lists are sorted by it
  JobKind kind = JobKind::kVideo;
  runtime::JobSpec spec;  // spec.id is the job's id
  std::optional<double> deadline_s;  // as asked, from submission (spec.deadline_s may be less after a restart)
  double created_at = 0;             // unix seconds
  std::optional<double> completed_at;
  bool cancel_requested = false;  // cancel was accepted; never resubmitted after a restart
  // DELETE was accepted: the job is gone from the API, and its record stays (so marked)
  // only until its files are removed, which recover() finishes after a crash.
  bool delete_requested = false;

  runtime::JobProgress progress;  // the engine's last event (progress.phase is the state)
};

const char* job_kind_name(JobKind kind);
const char* phase_name(runtime::JobPhase phase);
// Inverse of phase_name; throws ditserve::Error for an unknown name.
runtime::JobPhase phase_from_name(const std::string& name);
bool is_terminal_phase(runtime::JobPhase phase);

// The request part of a job (spec, deadline, kind) as JSON, for the store's spec column:
// a request field added later is one more optional key, so a store written before it
// opens unchanged and its jobs read back with the field unset (negative_prompt, sampler
// and shift: the model's defaults).
nlohmann::json spec_to_json(const Job& job);
void spec_from_json(const nlohmann::json& j, Job& job);

}  // namespace ditserve::server
