#pragma once
// The bodies of POST /v1/videos and POST /v1/images/generations, parsed and validated in
// one place. Bodies arrive as JSON or as multipart/form-data (what OpenAI's SDKs send for
// videos), so both become a Fields object first; in a form every value is text and numbers
// and booleans are read from it. Every error is an ApiError naming the field.
//
// Frames and seconds: a video has num_frames frames shown at `fps` frames per second
// (RequestLimits::fps, also the MP4 rate), so seconds = num_frames / fps. A request gives
// either, or both when they agree (within one frame): `seconds` alone asks for
// round(seconds * fps) frames; neither gives RequestLimits::default_frames.

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
  float fps = 24;
  std::int64_t default_width = 64;
  std::int64_t default_height = 64;
  std::int64_t default_frames = 16;
  int default_steps = 30;
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
