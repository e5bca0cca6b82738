#include "sim/workload.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "sched/error.h"
#include "sim/random.h"

namespace ditserve::sim {

using sched::fail;
using sched::InvalidInput;

namespace {
// Any int would do for the scheduler; a bound keeps a typo (1e12) from wrapping around.
constexpr int kMinPriority = -1000000, kMaxPriority = 1000000;
}  // namespace

std::vector<MixEntry> parse_mix(const std::string& text, const sched::Profile& profile) {
  std::vector<MixEntry> mix;
  if (text == "uniform" || text == "skewed") {
    double lmax = 0;
    for (const auto& s : profile.shapes) lmax = std::max(lmax, 1.0 * s.height * s.width * s.frames);
    for (std::size_t i = 0; i < profile.shapes.size(); ++i) {
      const auto& s = profile.shapes[i];
      const double w = text == "uniform" ? 1.0 : std::exp(1.0 * s.height * s.width * s.frames / lmax);
      mix.push_back({static_cast<int>(i), w});
    }
    return mix;
  }
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto colon = item.find(':');
    const std::string name = item.substr(0, colon);
    double w = 1;
    int steps = 0;
    if (colon != std::string::npos) {
      const auto second = item.find(':', colon + 1);
      const std::string weight = item.substr(colon + 1, second == std::string::npos
                                                            ? std::string::npos
                                                            : second - colon - 1);
      std::size_t used = 0;
      try {
        w = std::stod(weight, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != weight.size() || !(w > 0))
        fail<InvalidInput>("--mix entry '", item, "': the weight must be a number > 0");
      if (second != std::string::npos) {
        const std::string count = item.substr(second + 1);
        used = 0;
        try {
          steps = std::stoi(count, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != count.size() || steps < 1)
          fail<InvalidInput>("--mix entry '", item, "': the steps must be an integer >= 1");
      }
    }
    mix.push_back({profile.shape_index(name, "--mix entry '" + item + "'"), w, steps});
  }
  if (mix.empty()) fail<InvalidInput>("--mix: no shapes given");
  return mix;
}

std::vector<sched::RequestSpec> generate(const WorkloadSpec& spec, const sched::Profile& profile) {
  if (!(spec.rate > 0)) fail<InvalidInput>("workload: the arrival rate must be > 0, got ", spec.rate);
  if (spec.duration_s <= 0 && spec.count <= 0)
    fail<InvalidInput>("workload: give a duration or a request count");
  if (spec.mix.empty()) fail<InvalidInput>("workload: the shape mix is empty");
  if (spec.steps < 1) fail<InvalidInput>("workload: steps must be >= 1, got ", spec.steps);
  if (spec.arrivals == Arrivals::kGamma && !(spec.burstiness > 0))
    fail<InvalidInput>("workload: burstiness must be > 0, got ", spec.burstiness);
  double total = 0;
  for (const auto& m : spec.mix) total += m.weight;
  Rng rng(spec.seed);
  std::vector<sched::RequestSpec> out;
  double t = 0;
  for (;;) {
    if (spec.arrivals == Arrivals::kPoisson) {
      t += rng.exponential(spec.rate);
    } else {
      const double shape = 1.0 / (spec.burstiness * spec.burstiness);
      t += rng.gamma(shape, 1.0 / (spec.rate * shape));
    }
    if (spec.duration_s > 0 && t >= spec.duration_s) break;
    if (spec.count > 0 && static_cast<int>(out.size()) >= spec.count) break;
    double pick = rng.uniform() * total;
    std::size_t m = 0;
    while (m + 1 < spec.mix.size() && pick >= spec.mix[m].weight) pick -= spec.mix[m++].weight;
    sched::RequestSpec r;
    r.id = static_cast<sched::RequestId>(out.size());
    r.shape = spec.mix[m].shape;
    r.steps = spec.mix[m].steps > 0 ? spec.mix[m].steps : spec.steps;
    r.arrival = t;
    r.deadline = t + spec.slo_scale * profile.shape(r.shape).solo_latency(r.steps);
    out.push_back(r);
  }
  return out;
}

std::vector<sched::RequestSpec> load_trace(const std::string& path, const sched::Profile& profile,
                                           double slo_scale) {
  std::ifstream in(path);
  if (!in) fail<InvalidInput>("cannot open trace '", path, "'");
  std::vector<sched::RequestSpec> out;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      fail<InvalidInput>(where, ": not valid JSON (", e.what(), ")");
    }
    if (!j.is_object()) fail<InvalidInput>(where, ": expected a JSON object");
    auto need = [&](const char* key) -> const nlohmann::json& {
      if (!j.contains(key)) fail<InvalidInput>(where, ": missing field '", key, "'");
      return j[key];
    };
    sched::RequestSpec r;
    const auto& id = need("id");
    if (!id.is_number_integer()) fail<InvalidInput>(where, ": field 'id' must be an integer");
    r.id = id.get<sched::RequestId>();
    const auto& arrival = need("arrival_s");
    if (!arrival.is_number() || !(arrival.get<double>() >= 0))
      fail<InvalidInput>(where, ": field 'arrival_s' must be a number >= 0");
    r.arrival = arrival.get<double>();
    if (!out.empty() && r.arrival < out.back().arrival)
      fail<InvalidInput>(where, ": field 'arrival_s' goes backwards (", r.arrival, " after ",
                         out.back().arrival, "); a trace is replayed in order");
    const auto& shape = need("shape");
    if (!shape.is_string()) fail<InvalidInput>(where, ": field 'shape' must be a string");
    r.shape = profile.shape_index(shape.get<std::string>(), where + ": field 'shape'");
    const auto& steps = need("steps");
    if (!steps.is_number_integer() || steps.get<int>() < 1)
      fail<InvalidInput>(where, ": field 'steps' must be an integer >= 1");
    r.steps = steps.get<int>();
    if (j.contains("deadline_s")) {
      if (!j["deadline_s"].is_number() || !(j["deadline_s"].get<double>() > 0))
        fail<InvalidInput>(where, ": field 'deadline_s' must be a number > 0 (seconds after arrival)");
      r.deadline = r.arrival + j["deadline_s"].get<double>();
    } else {
      r.deadline = r.arrival + slo_scale * profile.shape(r.shape).solo_latency(r.steps);
    }
    if (j.contains("priority")) {
      const auto& priority = j["priority"];
      if (!priority.is_number_integer() || priority.get<double>() < kMinPriority ||
          priority.get<double>() > kMaxPriority)
        fail<InvalidInput>(where, ": field 'priority' must be an integer in [", kMinPriority, ", ",
                           kMaxPriority, "]");
      r.priority = priority.get<int>();
    }
    out.push_back(r);
  }
  if (out.empty()) fail<InvalidInput>(path, ": the trace has no requests");
  return out;
}

void write_trace(const std::string& path, const std::vector<sched::RequestSpec>& requests,
                 const sched::Profile& profile) {
  std::ofstream out(path);
  if (!out) fail<InvalidInput>("cannot write trace '", path, "'");
  for (const auto& r : requests) {
    nlohmann::json j = {{"id", r.id}, {"arrival_s", r.arrival}, {"shape", profile.shape(r.shape).name},
                        {"steps", r.steps}};
    if (std::isfinite(r.deadline)) j["deadline_s"] = r.deadline - r.arrival;
    if (r.priority != 0) j["priority"] = r.priority;
    out << j.dump() << "\n";
  }
}

}  // namespace ditserve::sim
