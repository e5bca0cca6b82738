#pragma once
// Small hand-made profiles for scheduler and simulator tests, with known optimal DoPs.

#include <map>
#include <string>

#include "sched/profile.h"

namespace ditserve::testing {

inline sched::ShapeProfile make_shape(const std::string& name, std::map<int, double> step_ms,
                                      double decode_ms = 100, double encode_ms = 10, double move_ms = 1) {
  sched::ShapeProfile s;
  s.name = name;
  s.height = 240;
  s.width = 426;
  s.frames = 51;
  for (const auto& [k, ms] : step_ms) s.step_s[k] = ms / 1000.0;
  s.decode_s = {{1, decode_ms / 1000.0}, {2, 0.95 * decode_ms / 1000.0}};
  s.encode_s = encode_ms / 1000.0;
  s.move_s = move_ms / 1000.0;
  return s;
}

// "small": slower when split (B = 1). "large": scales to 4 (B = 4). DoPs 1, 2, 4.
inline sched::Profile small_large_profile() {
  sched::Profile p;
  p.model = "test";
  p.shapes.push_back(make_shape("small", {{1, 50}, {2, 60}, {4, 70}}, 100));
  p.shapes.push_back(make_shape("large", {{1, 1000}, {2, 520}, {4, 270}}, 400));
  return p;
}

}  // namespace ditserve::testing
