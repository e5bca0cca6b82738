#include "server/video_object.h"

#include <algorithm>
#include <cmath>

#include "server/generation_request.h"

namespace ditserve::server {

using runtime::JobPhase;

const char* api_status(JobPhase phase) {
  switch (phase) {
    case JobPhase::kQueued: return "queued";
    case JobPhase::kEncoding:
    case JobPhase::kDenoising:
    case JobPhase::kDecoding: return "in_progress";
    case JobPhase::kCompleted: return "completed";
    case JobPhase::kFailed:
    case JobPhase::kCancelled: return "failed";
  }
  return "failed";
}

int progress_percent(const runtime::JobProgress& p) {
  const int denoised = p.total_steps > 0 ? 5 + 90 * std::clamp(p.step, 0, p.total_steps) / p.total_steps : 5;
  switch (p.phase) {
    case JobPhase::kQueued: return 0;
    case JobPhase::kEncoding: return 2;
    case JobPhase::kDenoising: return denoised;
    case JobPhase::kDecoding: return 95;
    case JobPhase::kCompleted: return 100;
    case JobPhase::kFailed:
    case JobPhase::kCancelled: return p.step > 0 ? denoised : 0;
  }
  return 0;
}

namespace {

nlohmann::json timings(const runtime::JobProgress& p) {
  return {{"queued_s", p.queued_s}, {"encode_s", p.encode_s}, {"denoise_s", p.denoise_s},
          {"decode_s", p.decode_s}};
}

nlohmann::json error_object(const Job& job) {
  const runtime::JobProgress& p = job.progress;
  if (p.phase == JobPhase::kCancelled)
    return {{"code", "cancelled"}, {"message", "cancelled by a DELETE request"}};
  if (p.phase == JobPhase::kFailed)
    return {{"code", "generation_failed"}, {"message", p.error.empty() ? "generation failed" : p.error}};
  return nullptr;
}

}  // namespace

nlohmann::json video_object(const Job& job) {
  const runtime::JobSpec& s = job.spec;
  const runtime::JobProgress& p = job.progress;
  nlohmann::json v = {
      {"id", s.id},
      {"object", job.kind == JobKind::kImage ? "image" : "video"},
      {"status", api_status(p.phase)},
      {"progress", progress_percent(p)},
      {"created_at", static_cast<std::int64_t>(job.created_at)},
      {"completed_at", job.completed_at ? nlohmann::json(static_cast<std::int64_t>(*job.completed_at))
                                        : nlohmann::json(nullptr)},
      {"expires_at", nullptr},
      {"model", s.model},
      {"prompt", s.request.prompt},
      {"size", std::to_string(s.request.width) + "x" + std::to_string(s.request.height)},
      {"seconds", seconds_text(s.request.frames, s.request.fps)},
      {"remixed_from_video_id", nullptr},
      {"error", error_object(job)},
      // ditserve's fields
      {"phase", phase_name(p.phase)},
      {"step", p.step},
      {"total_steps", p.total_steps > 0 ? p.total_steps : s.request.steps},
      {"dop", p.dop},
      {"devices", p.devices},
      {"decode_dop", p.decode_dop},
      {"decode_devices", p.decode_devices},
      {"timings", timings(p)},
      {"num_frames", s.request.frames},
      {"steps", s.request.steps},
      {"seed", s.request.seed},
      {"guidance_scale", s.request.guidance},
      // null: the model's default
      {"negative_prompt", s.request.negative_prompt.empty() ? nlohmann::json(nullptr)
                                                            : nlohmann::json(s.request.negative_prompt)},
      {"sampler", s.request.sampler ? nlohmann::json(sampler_name(*s.request.sampler)) : nlohmann::json(nullptr)},
      {"shift", s.request.shift ? nlohmann::json(*s.request.shift) : nlohmann::json(nullptr)},
      {"priority", s.priority},
      {"deadline_ms", job.deadline_s ? nlohmann::json(std::llround(*job.deadline_s * 1000))
                                     : nlohmann::json(nullptr)},
  };
  return v;
}

nlohmann::json event_object(const Job& job, const runtime::JobProgress& p, const std::string& type) {
  Job at_event = job;
  at_event.progress = p;
  nlohmann::json e = {{"id", job.spec.id},
                      {"object", "video.event"},
                      {"type", type},
                      {"status", api_status(p.phase)},
                      {"phase", phase_name(p.phase)},
                      {"progress", progress_percent(p)},
                      {"step", p.step},
                      {"total_steps", p.total_steps},
                      {"dop", p.dop},
                      {"devices", p.devices},
                      {"decode_dop", p.decode_dop},
                      {"decode_devices", p.decode_devices},
                      {"timings", timings(p)},
                      {"error", error_object(at_event)}};
  return e;
}

}  // namespace ditserve::server
