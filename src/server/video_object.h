#pragma once
// Jobs as the API shows them: OpenAI's video object (id, object "video", status queued |
// in_progress | completed | failed, progress 0-100, created_at, completed_at, size,
// seconds, model, prompt, error) plus ditserve's fields (phase, step, total_steps, dop,
// devices, decode_dop, decode_devices, timings, num_frames, steps, seed, guidance_scale,
// negative_prompt, sampler, shift, priority, deadline_ms; the last five null when the
// request left them out). dop/devices are the group of the current or last denoising
// step; decode_dop/decode_devices the VAE decode's group once decoding started (0 and []
// before, and while a decode that lost a device waits for another group).

#include <nlohmann/json.hpp>
#include <string>

#include "server/job.h"

namespace ditserve::server {

// queued -> "queued"; encoding/denoising/decoding -> "in_progress"; completed ->
// "completed"; failed and cancelled -> "failed" (OpenAI has no cancelled status; the
// error's code says "cancelled").
const char* api_status(runtime::JobPhase phase);

// 0 while queued, 2 while encoding, 5 + 90 * step / steps while denoising, 95 while
// decoding, 100 when completed; a failed job keeps the value it had reached.
int progress_percent(const runtime::JobProgress& p);

nlohmann::json video_object(const Job& job);
// The body of one progress event: the job's id, status, progress and the event's fields
// (as the video object's: phase, step, total_steps, dop, devices, decode_dop,
// decode_devices, timings, error).
nlohmann::json event_object(const Job& job, const runtime::JobProgress& p, const std::string& type);

}  // namespace ditserve::server
