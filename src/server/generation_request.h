#pragma once
// The bodies of POST /v1/videos and POST /v1/images/generations, parsed and validated in
// one place. Bodies arrive as JSON or as multipart/form-data (what OpenAI's SDKs send for
// videos), so both become a Fields object first; in a form every value is text and numbers
// and booleans are read from it. Every error is an ApiError naming the field.
//
// Fields a request leaves out take the model's defaults (pipeline's default_request:
// Open-Sora's 64x64, 16 frames, 30 steps, guidance 7 at 24 fps; Wan's size, frames, steps,
// guidance, 16 fps, and its sampler, shift and negative prompt). negative_prompt (Wan's
// unconditional prompt; Open-Sora ignores it, as the pipeline does), sampler and shift are
// passed to the pipeline as given, and validate_request refuses a sampler or shift the
// model does not take.
//
// Frames and seconds: a video has num_frames frames shown at the model's fps (also the
// MP4 rate), so seconds = num_frames / fps. A request gives either, or both when they
// agree (within one frame): `seconds` alone asks for round(seconds * fps) frames; neither
// gives the model's default frames.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/pipeline.h"

namespace ditserve::server {

struct RequestLimits {
  std::int64_t max_side = 2048;    // pixels, width and height
  std::int64_t max_frames = 512;
  int max_steps = 500;
  std::size_t max_prompt_bytes = 8192;
  double max_deadline_ms = 86'400'000;  // a day
  int max_priority = 1000;              // |priority|
  double max_shift = 100;               // Wan's flow shift; its models use 3 to 12
};

// A request body's fields.
struct Fields {
  nlohmann::json values = nlohmann::json::object();
  bool from_form = false;  // multipart/form-data: every value is a string
};

// The JSON body (throws a 400 "invalid_json" for malformed JSON or a non-object).
Fields json_fields(const std::string& body);

struct GenerationParams {
  std::string model;
  GenerateRequest request;
  std::optional<double> deadline_s;  // from deadline_ms
  int priority = 0;
  bool reject_if_late = false;  // answer 422 up front when the deadline cannot be met
};

// `models`: the served model names; the first is the default.
GenerationParams parse_video_request(const Fields& fields, const std::vector<std::string>& models,
                                     const RequestLimits& limits);

struct ImageParams {
  GenerationParams generation;  // one frame
  std::string response_format = "b64_json";  // or "url"
};
ImageParams parse_image_request(const Fields& fields, const std::vector<std::string>& models,
                                const RequestLimits& limits);

// "WIDTHxHEIGHT" -> {width, height}; a 400 naming "size" otherwise.
std::pair<std::int64_t, std::int64_t> parse_size(const std::string& text);
// seconds as the API reports them: num_frames / fps, shortest decimal form ("4", "0.67").
std::string seconds_text(std::int64_t frames, float fps);

}  // namespace ditserve::server
