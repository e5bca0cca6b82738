#include "sched/profile.h"

#include <cmath>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "sched/error.h"

namespace ditserve::sched {
namespace {

using nlohmann::json;

const json& field(const json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) fail<InvalidInput>(where, ": expected an object");
  const auto it = obj.find(key);
  if (it == obj.end()) fail<InvalidInput>(where, ": missing field '", key, "'");
  return *it;
}

double positive_number(const json& v, const std::string& where) {
  if (!v.is_number()) fail<InvalidInput>(where, ": expected a number, got ", v.dump());
  const double x = v.get<double>();
  if (!(x >= 0) || !std::isfinite(x)) fail<InvalidInput>(where, ": must be >= 0, got ", x);
  return x;
}

int positive_int(const json& v, const std::string& where) {
  if (!v.is_number_integer() || v.get<long long>() < 1)
    fail<InvalidInput>(where, ": expected an integer >= 1, got ", v.dump());
  return v.get<int>();
}

// {"1": 45.5, "2": 62.0} in milliseconds -> {1: 0.0455, 2: 0.062} in seconds.
std::map<int, double> dop_table(const json& v, const std::string& where) {
  if (!v.is_object() || v.empty())
    fail<InvalidInput>(where, ": expected a non-empty object {\"<DoP>\": <ms>, ...}");
  std::map<int, double> out;
  for (const auto& [key, value] : v.items()) {
    const std::string at = where + "[\"" + key + "\"]";
    std::size_t used = 0;
    int dop = 0;
    try {
      dop = std::stoi(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != key.size() || dop < 1) fail<InvalidInput>(at, ": the key must be a DoP >= 1");
    const double ms = positive_number(value, at);
    if (ms <= 0) fail<InvalidInput>(at, ": a duration must be > 0 ms");
    out[dop] = ms / 1000.0;
  }
  return out;
}

std::string default_name(int height, int width, int frames) {
  // Open-Sora names video shapes by height ("720p"); images by width x height.
  if (frames > 1) return std::to_string(height) + "p";
  return std::to_string(width) + "x" + std::to_string(height);
}

}  // namespace

double ShapeProfile::step(int dop) const {
  const auto it = step_s.find(dop);
  if (it == step_s.end()) fail<InvalidInput>("profile shape '", name, "' has no step_ms for DoP ", dop);
  return it->second;
}

double ShapeProfile::decode(int dop) const {
  const auto it = decode_s.find(dop);
  if (it == decode_s.end())
    fail<InvalidInput>("profile shape '", name, "' has no decode_ms for DoP ", dop);
  return it->second;
}

int ShapeProfile::decode_dop_at_most(int dop) const {
  int best = decode_s.begin()->first;
  for (const auto& [k, t] : decode_s)
    if (k <= dop) best = k;
  return best;
}

double ShapeProfile::fastest_step() const {
  double best = std::numeric_limits<double>::infinity();
  for (const auto& [k, t] : step_s) best = std::min(best, t);
  return best;
}

double ShapeProfile::solo_latency(int steps) const {
  return encode_s + steps * step(1) + decode(decode_dop_at_most(1));
}

int ShapeProfile::optimal_dop(double min_gain, int max_devices) const {
  int dop = step_s.begin()->first;
  for (;;) {
    const auto next = step_s.find(dop * 2);
    if (next == step_s.end() || dop * 2 > max_devices) return dop;
    const double gain = 1.0 - next->second / step_s.at(dop);
    if (gain < min_gain) return dop;
    dop *= 2;
  }
}

int Profile::find_shape(const std::string& name) const {
  for (std::size_t i = 0; i < shapes.size(); ++i)
    if (shapes[i].name == name) return static_cast<int>(i);
  return -1;
}

int Profile::shape_index(const std::string& name, const std::string& where) const {
  const int i = find_shape(name);
  if (i < 0) {
    std::string known;
    for (const auto& s : shapes) known += (known.empty() ? "" : ", ") + s.name;
    fail<InvalidInput>(where, ": shape '", name, "' is not in the profile of ", model,
                       " (it has: ", known, ")");
  }
  return i;
}

const std::string& Profile::model_of(int index) const {
  const ShapeProfile& s = shape(index);
  return s.model.empty() ? model : s.model;
}

void Profile::check_fits(int devices) const {
  for (const auto& s : shapes) {
    if (s.max_dop() > devices)
      fail<InvalidInput>("profile shape '", s.name, "': step_ms has DoP ", s.max_dop(),
                         " but the cluster has only ", devices, " devices");
    if (s.decode_s.rbegin()->first > devices)
      fail<InvalidInput>("profile shape '", s.name, "': decode_ms has DoP ",
                         s.decode_s.rbegin()->first, " but the cluster has only ", devices,
                         " devices");
  }
}

Profile parse_profile(const json& j, const std::string& source) {
  Profile p;
  if (!j.is_object()) fail<InvalidInput>(source, ": a profile must be a JSON object");
  const json& model = field(j, "model", source);
  if (!model.is_string()) fail<InvalidInput>(source, ": field 'model' must be a string");
  p.model = model.get<std::string>();
  if (j.contains("hardware") && j["hardware"].is_string()) p.hardware = j["hardware"].get<std::string>();
  const json& shapes = field(j, "shapes", source);
  if (!shapes.is_array() || shapes.empty())
    fail<InvalidInput>(source, ": field 'shapes' must be a non-empty array");
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const std::string where = source + ": shapes[" + std::to_string(i) + "]";
    const json& s = shapes[i];
    ShapeProfile sp;
    sp.height = positive_int(field(s, "height", where), where + ".height");
    sp.width = positive_int(field(s, "width", where), where + ".width");
    sp.frames = s.contains("frames") ? positive_int(s["frames"], where + ".frames") : 1;
    if (s.contains("name")) {
      if (!s["name"].is_string() || s["name"].get<std::string>().empty())
        fail<InvalidInput>(where, ".name: expected a non-empty string");
      sp.name = s["name"].get<std::string>();
    } else {
      sp.name = default_name(sp.height, sp.width, sp.frames);
    }
    if (s.contains("model")) {
      if (!s["model"].is_string() || s["model"].get<std::string>().empty())
        fail<InvalidInput>(where, ".model: expected a non-empty string (the shape's model)");
      sp.model = s["model"].get<std::string>();
    }
    sp.step_s = dop_table(field(s, "step_ms", where), where + ".step_ms");
    if (!sp.step_s.count(1)) fail<InvalidInput>(where, ".step_ms: DoP 1 is required (solo latency)");
    sp.encode_s = positive_number(field(s, "encode_ms", where), where + ".encode_ms") / 1000.0;
    sp.decode_s = dop_table(field(s, "decode_ms", where), where + ".decode_ms");
    if (!sp.decode_s.count(1)) fail<InvalidInput>(where, ".decode_ms: DoP 1 is required");
    sp.move_s = s.contains("move_ms") ? positive_number(s["move_ms"], where + ".move_ms") / 1000.0 : 0.0;
    if (p.find_shape(sp.name) >= 0) fail<InvalidInput>(where, ".name: shape '", sp.name, "' appears twice");
    p.shapes.push_back(std::move(sp));
  }
  return p;
}

Profile load_profile(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail<InvalidInput>("cannot open profile '", path, "'");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    fail<InvalidInput>(path, ": not valid JSON (", e.what(), ")");
  }
  return parse_profile(j, path);
}

json profile_to_json(const Profile& profile) {
  json shapes = json::array();
  for (const auto& s : profile.shapes) {
    json step = json::object(), dec = json::object();
    for (const auto& [k, t] : s.step_s) step[std::to_string(k)] = t * 1000.0;
    for (const auto& [k, t] : s.decode_s) dec[std::to_string(k)] = t * 1000.0;
    json shape = {{"name", s.name},        {"height", s.height},
                  {"width", s.width},      {"frames", s.frames},
                  {"step_ms", step},       {"encode_ms", s.encode_s * 1000.0},
                  {"decode_ms", dec},      {"move_ms", s.move_s * 1000.0}};
    if (!s.model.empty()) shape["model"] = s.model;  // only mixed profiles carry it
    shapes.push_back(std::move(shape));
  }
  return {{"model", profile.model}, {"hardware", profile.hardware}, {"shapes", shapes}};
}

}  // namespace ditserve::sched
