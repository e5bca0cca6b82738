#include "server/job.h"

#include "pipeline/flow_matching.h"
#include "tensor/error.h"

namespace ditserve::server {

using runtime::JobPhase;

const char* job_kind_name(JobKind kind) { return kind == JobKind::kImage ? "image" : "video"; }

// The server names phases itself rather than calling runtime::job_phase_name, so the store's
// strings are fixed by this file whatever the engine prints.
const char* phase_name(JobPhase phase) {
  switch (phase) {
    case JobPhase::kQueued: return "queued";
    case JobPhase::kEncoding: return "encoding";
    case JobPhase::kDenoising: return "denoising";
    case JobPhase::kDecoding: return "decoding";
    case JobPhase::kCompleted: return "completed";
    case JobPhase::kFailed: return "failed";
    case JobPhase::kCancelled: return "cancelled";
  }
  return "unknown";
}

JobPhase phase_from_name(const std::string& name) {
  for (const JobPhase p : {JobPhase::kQueued, JobPhase::kEncoding, JobPhase::kDenoising,
                           JobPhase::kDecoding, JobPhase::kCompleted, JobPhase::kFailed,
                           JobPhase::kCancelled}) {
    if (name == phase_name(p)) return p;
  }
  throw Error("job store: unknown phase '" + name + "'");
}

bool is_terminal_phase(JobPhase p) {
  return p == JobPhase::kCompleted || p == JobPhase::kFailed || p == JobPhase::kCancelled;
}

nlohmann::json spec_to_json(const Job& job) {
  const runtime::JobSpec& s = job.spec;
  const GenerateRequest& r = s.request;
  nlohmann::json j = {{"kind", job_kind_name(job.kind)},
                      {"model", s.model},
                      {"prompt", r.prompt},
                      {"frames", r.frames},
                      {"width", r.width},
                      {"height", r.height},
                      {"steps", r.steps},
                      {"guidance", r.guidance},
                      {"fps", r.fps},
                      {"seed", r.seed},
                      {"priority", s.priority},
                      {"output", s.output.string()},
                      {"format", s.format == runtime::OutputFormat::kPng   ? "png"
                                 : s.format == runtime::OutputFormat::kY4m ? "y4m"
                                                                           : "mp4"},
                      {"state_file", s.state_file.string()}};
  if (job.deadline_s) j["deadline_s"] = *job.deadline_s;
  // Unset: the model's own, resolved when the job runs (and recorded in its state file).
  if (!r.negative_prompt.empty()) j["negative_prompt"] = r.negative_prompt;
  if (r.sampler) j["sampler"] = sampler_name(*r.sampler);
  if (r.shift) j["shift"] = *r.shift;
  return j;
}

void spec_from_json(const nlohmann::json& j, Job& job) {
  job.kind = j.at("kind") == "image" ? JobKind::kImage : JobKind::kVideo;
  runtime::JobSpec& s = job.spec;
  GenerateRequest& r = s.request;
  s.model = j.at("model").get<std::string>();
  r.prompt = j.at("prompt").get<std::string>();
  r.frames = j.at("frames").get<std::int64_t>();
  r.width = j.at("width").get<std::int64_t>();
  r.height = j.at("height").get<std::int64_t>();
  r.steps = j.at("steps").get<int>();
  r.guidance = j.at("guidance").get<float>();
  r.fps = j.at("fps").get<float>();
  r.seed = j.at("seed").get<std::uint64_t>();
  s.priority = j.at("priority").get<int>();
  s.output = j.at("output").get<std::string>();
  const std::string format = j.at("format").get<std::string>();
  s.format = format == "png"   ? runtime::OutputFormat::kPng
             : format == "y4m" ? runtime::OutputFormat::kY4m
                               : runtime::OutputFormat::kMp4;
  s.state_file = j.at("state_file").get<std::string>();
  // Absent from jobs stored before these fields existed: the model's defaults, as then.
  r.negative_prompt = j.value("negative_prompt", std::string());
  if (j.contains("sampler")) r.sampler = parse_sampler(j.at("sampler").get<std::string>());
  if (j.contains("shift")) r.shift = j.at("shift").get<double>();
  if (j.contains("deadline_s")) {
    job.deadline_s = j.at("deadline_s").get<double>();
    s.deadline_s = *job.deadline_s;
  }
}

}  // namespace ditserve::server
