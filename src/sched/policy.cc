#include "sched/policy.h"

#include "sched/error.h"
#include "sched/policy_util.h"

namespace ditserve::sched {

std::string Policy::unservable(const SchedState& s, int request) const {
  const ShapeProfile& shape = s.shape_of(request);
  const auto& dops = s.requests[request].phase == Phase::kAwaitDecode ? shape.decode_s : shape.step_s;
  const int need = dops.empty() ? 1 : dops.begin()->first;
  const int have = s.alive_count();
  return have < need ? "policy " + name() + " " + too_few_devices(need, have) : "";
}

std::unique_ptr<Policy> make_policy(const std::string& spec, const PolicyOptions& options) {
  const auto colon = spec.find(':');
  const std::string head = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  auto number = [&](const char* what) {
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(arg, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (arg.empty() || used != arg.size() || !(v > 0))
      fail<InvalidInput>("policy '", spec, "': expected ", what, " > 0 after ':'");
    return v;
  };
  if (head == "static") {
    const double k = number("a DoP");
    if (k != static_cast<int>(k)) fail<InvalidInput>("policy '", spec, "': the DoP must be an integer");
    return make_static_policy(static_cast<int>(k));
  }
  if (colon == std::string::npos) {
    if (head == "static-best") return make_static_best_policy(options);
    if (head == "ddit") return make_ddit_policy(options);
    if (head == "tetriserve") return make_tetriserve_policy(options);
    if (head == "elastic") return make_elastic_policy(options);
  } else if (head == "tetriserve") {
    PolicyOptions o = options;
    o.round_s = number("a round length in ms") / 1000.0;
    return make_tetriserve_policy(o);
  }
  fail<InvalidInput>("unknown policy '", spec,
                     "' (known: static:K, static-best, ddit, tetriserve[:round_ms], elastic)");
}

}  // namespace ditserve::sched
