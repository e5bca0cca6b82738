#include "server/generation_request.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>

#include "models/registry.h"
#include "pipeline/flow_matching.h"
#include "server/api_error.h"

namespace ditserve::server {
namespace {

std::string type_error(const std::string& name, const char* expected, const nlohmann::json& v) {
  return name + ": expected " + expected + ", got " + (v.is_string() ? "'" + v.get<std::string>() + "'" : v.dump());
}

// Typed access to a body's fields; JSON values must have the right type, form values are
// parsed from their text.
class FieldReader {
 public:
  FieldReader(const Fields& fields, const std::set<std::string>& allowed) : f_(fields) {
    for (const auto& [key, value] : f_.values.items()) {
      if (allowed.count(key) == 0)
        throw bad_request(key, "unknown field '" + key + "'", "unknown_field");
    }
  }

  bool has(const std::string& name) const {
    return f_.values.contains(name) && !f_.values.at(name).is_null();
  }
  const nlohmann::json& raw(const std::string& name) const { return f_.values.at(name); }

  std::optional<std::string> string(const std::string& name) const {
    if (!has(name)) return std::nullopt;
    const nlohmann::json& v = raw(name);
    if (!v.is_string()) throw bad_request(name, type_error(name, "a string", v), "invalid_type");
    return v.get<std::string>();
  }

  std::optional<std::int64_t> integer(const std::string& name, std::int64_t lo,
                                      std::int64_t hi) const {
    if (!has(name)) return std::nullopt;
    const nlohmann::json& v = raw(name);
    std::int64_t out = 0;
    if (f_.from_form && v.is_string()) {
      const std::string s = v.get<std::string>();
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      if (ec != std::errc() || end != s.data() + s.size() || s.empty())
        throw bad_request(name, type_error(name, "an integer", v), "invalid_type");
    } else if (v.is_number_integer()) {
      if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
        throw out_of_range(name, lo, hi, v.dump());
      out = v.get<std::int64_t>();
    } else {
      throw bad_request(name, type_error(name, "an integer", v), "invalid_type");
    }
    if (out < lo || out > hi) throw out_of_range(name, lo, hi, std::to_string(out));
    return out;
  }

  std::optional<std::uint64_t> unsigned_integer(const std::string& name) const {
    if (!has(name)) return std::nullopt;
    const nlohmann::json& v = raw(name);
    std::uint64_t out = 0;
    if (f_.from_form && v.is_string()) {
      const std::string s = v.get<std::string>();
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      if (ec != std::errc() || end != s.data() + s.size() || s.empty())
        throw bad_request(name, type_error(name, "a non-negative integer", v), "invalid_type");
    } else if (v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0)) {
      out = v.get<std::uint64_t>();
    } else {
      throw bad_request(name, type_error(name, "a non-negative integer", v), "invalid_type");
    }
    return out;
  }

  // Numbers; `text_ok` also accepts a numeric string in JSON (OpenAI's seconds is "4").
  std::optional<double> number(const std::string& name, double lo, double hi,
                               bool text_ok = false) const {
    if (!has(name)) return std::nullopt;
    const nlohmann::json& v = raw(name);
    double out = 0;
    if (v.is_string() && (f_.from_form || text_ok)) {
      const std::string s = v.get<std::string>();
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      if (ec != std::errc() || end != s.data() + s.size() || s.empty())
        throw bad_request(name, type_error(name, "a number", v), "invalid_type");
    } else if (v.is_number()) {
      out = v.get<double>();
    } else {
      throw bad_request(name, type_error(name, "a number", v), "invalid_type");
    }
    if (!std::isfinite(out) || out < lo || out > hi) {
      char range[96];
      std::snprintf(range, sizeof(range), "must be in [%g, %g]", lo, hi);
      throw bad_request(name, name + ": " + range + ", got " + v.dump(), "out_of_range");
    }
    return out;
  }

  std::optional<bool> boolean(const std::string& name) const {
    if (!has(name)) return std::nullopt;
    const nlohmann::json& v = raw(name);
    if (v.is_boolean()) return v.get<bool>();
    if (f_.from_form && v.is_string()) {
      if (v == "true" || v == "1") return true;
      if (v == "false" || v == "0") return false;
    }
    throw bad_request(name, type_error(name, "a boolean", v), "invalid_type");
  }

 private:
  static ApiError out_of_range(const std::string& name, std::int64_t lo, std::int64_t hi,
                               const std::string& got) {
    return bad_request(name,
                       name + ": must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                           "], got " + got,
                       "out_of_range");
  }

  const Fields& f_;
};

const std::set<std::string> kCommonFields = {
    "model",       "prompt",   "negative_prompt", "size",    "steps", "guidance_scale", "seed",
    "deadline_ms", "priority", "reject_if_late",  "sampler", "shift"};

std::set<std::string> with(std::set<std::string> base, std::initializer_list<const char*> more) {
  for (const char* m : more) base.insert(m);
  return base;
}

// The fields videos and images share; frames are left to the caller.
GenerationParams parse_common(const FieldReader& in, const std::vector<std::string>& models,
                              const RequestLimits& limits) {
  GenerationParams p;
  p.model = in.string("model").value_or(models.empty() ? "" : models.front());
  bool known = false;
  for (const std::string& m : models) known = known || m == p.model;
  if (!known) {
    std::string list;
    for (const std::string& m : models) list += (list.empty() ? "" : ", ") + m;
    throw bad_request("model", "model: unknown model '" + p.model + "'; this server serves " + list,
                      "model_not_found");
  }
  const std::optional<std::string> prompt = in.string("prompt");
  if (!prompt || prompt->empty())
    throw bad_request("prompt", "prompt: required, a non-empty string", "missing_required_parameter");
  if (prompt->size() > limits.max_prompt_bytes)
    throw bad_request("prompt",
                      "prompt: at most " + std::to_string(limits.max_prompt_bytes) + " bytes, got " +
                          std::to_string(prompt->size()),
                      "out_of_range");
  // The model's defaults for whatever the body leaves out. The sampler and shift stay
  // unset, which means the model's own (Pipeline::start resolves them), as a job read
  // back from the job store has them.
  p.request = default_request(find_model(p.model));
  p.request.sampler.reset();
  p.request.shift.reset();
  p.request.prompt = *prompt;
  if (const auto size = in.string("size")) {
    const auto [w, h] = parse_size(*size);
    if (w < 1 || h < 1 || w > limits.max_side || h > limits.max_side)
      throw bad_request("size",
                        "size: width and height must be in [1, " + std::to_string(limits.max_side) +
                            "], got '" + *size + "'",
                        "out_of_range");
    p.request.width = w;
    p.request.height = h;
  }
  p.request.steps = static_cast<int>(in.integer("steps", 1, limits.max_steps).value_or(p.request.steps));
  p.request.guidance =
      static_cast<float>(in.number("guidance_scale", 0, 100).value_or(p.request.guidance));
  p.request.seed = in.unsigned_integer("seed").value_or(0);
  // Empty is the model's default (Wan's sample_neg_prompt); Open-Sora ignores it, as the
  // pipeline does. Its token count is checked when the job is encoded.
  p.request.negative_prompt = in.string("negative_prompt").value_or("");
  if (p.request.negative_prompt.size() > limits.max_prompt_bytes)
    throw bad_request("negative_prompt",
                      "negative_prompt: at most " + std::to_string(limits.max_prompt_bytes) +
                          " bytes, got " + std::to_string(p.request.negative_prompt.size()),
                      "out_of_range");
  if (const auto sampler = in.string("sampler")) {
    try {
      p.request.sampler = parse_sampler(*sampler);
    } catch (const InvalidArgument& e) {
      throw from_invalid_argument(e);
    }
  }
  // Whether the model takes them is validate_request's call (validate_for_model).
  if (const auto shift = in.number("shift", 0, limits.max_shift)) p.request.shift = *shift;
  if (const auto ms = in.number("deadline_ms", 1, limits.max_deadline_ms)) p.deadline_s = *ms / 1000.0;
  p.priority = static_cast<int>(in.integer("priority", -limits.max_priority, limits.max_priority).value_or(0));
  p.reject_if_late = in.boolean("reject_if_late").value_or(false);
  if (p.reject_if_late && !p.deadline_s)
    throw bad_request("reject_if_late", "reject_if_late: needs deadline_ms", "missing_required_parameter");
  return p;
}

void validate_for_model(const GenerationParams& p) {
  try {
    validate_request(find_model(p.model), p.request);
  } catch (const InvalidArgument& e) {
    throw from_invalid_argument(e);
  }
}

}  // namespace

Fields json_fields(const std::string& body) {
  Fields f;
  try {
    f.values = nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    throw bad_request("", std::string("malformed JSON body: ") + e.what(), "invalid_json");
  }
  if (!f.values.is_object()) throw bad_request("", "the JSON body must be an object", "invalid_json");
  return f;
}

std::pair<std::int64_t, std::int64_t> parse_size(const std::string& text) {
  const auto x = text.find('x');
  std::int64_t w = 0, h = 0;
  bool ok = x != std::string::npos && x > 0 && x + 1 < text.size();
  if (ok) {
    const auto rw = std::from_chars(text.data(), text.data() + x, w);
    const auto rh = std::from_chars(text.data() + x + 1, text.data() + text.size(), h);
    ok = rw.ec == std::errc() && rw.ptr == text.data() + x && rh.ec == std::errc() &&
         rh.ptr == text.data() + text.size();
  }
  if (!ok) throw bad_request("size", "size: expected WIDTHxHEIGHT such as 64x64, got '" + text + "'");
  return {w, h};
}

std::string seconds_text(std::int64_t frames, float fps) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", static_cast<double>(frames) / fps);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

GenerationParams parse_video_request(const Fields& fields, const std::vector<std::string>& models,
                                     const RequestLimits& limits) {
  const FieldReader in(fields, with(kCommonFields, {"seconds", "num_frames"}));
  GenerationParams p = parse_common(in, models, limits);
  const std::optional<std::int64_t> frames = in.integer("num_frames", 1, limits.max_frames);
  const float fps = p.request.fps;  // the model's
  const std::optional<double> seconds =
      in.number("seconds", 0, static_cast<double>(limits.max_frames) / fps, true);
  if (seconds && *seconds <= 0)
    throw bad_request("seconds", "seconds: must be > 0, got " + in.raw("seconds").dump(), "out_of_range");
  p.request.frames = frames.value_or(p.request.frames);
  if (seconds) {
    const auto from_seconds = static_cast<std::int64_t>(std::llround(*seconds * fps));
    if (!frames) {
      p.request.frames = std::max<std::int64_t>(1, from_seconds);
    } else if (std::abs(static_cast<double>(*frames) / fps - *seconds) > 1.0 / fps) {
      throw bad_request("seconds",
                        "seconds: " + in.raw("seconds").dump() + " disagrees with num_frames " +
                            std::to_string(*frames) + " at " + seconds_text(static_cast<std::int64_t>(fps), 1) +
                            " fps; give one of them",
                        "inconsistent");
    }
  }
  validate_for_model(p);
  return p;
}

ImageParams parse_image_request(const Fields& fields, const std::vector<std::string>& models,
                                const RequestLimits& limits) {
  const FieldReader in(fields, with(kCommonFields, {"n", "response_format", "user"}));
  ImageParams p;
  p.generation = parse_common(in, models, limits);
  p.generation.request.frames = 1;
  if (in.integer("n", 1, 1).value_or(1) != 1) throw bad_request("n", "n: only 1 is supported");
  in.string("user");  // accepted for OpenAI compatibility; only its type is checked
  p.response_format = in.string("response_format").value_or("b64_json");
  if (p.response_format != "b64_json" && p.response_format != "url")
    throw bad_request("response_format",
                      "response_format: expected 'b64_json' or 'url', got '" + p.response_format + "'");
  validate_for_model(p.generation);
  return p;
}

}  // namespace ditserve::server
