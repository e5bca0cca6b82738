#pragma once
// The scheduler's profile as the engine keeps it: measured figures when a profile file is
// given, estimates for shapes nobody measured (added when a job first asks for one), and
// both refined from the durations the engine observes. Figures that were never measured
// follow the ones that were: an unmeasured DoP of a shape (a step's, or the VAE decode's)
// scales from its nearest measured DoP by a prior speed-up curve, an unmeasured shape from
// the engine-wide cost per unit of work (frames x height x width) seen so far. Not
// thread-safe (the engine's control thread owns it).

#include <cstdint>
#include <string>
#include <vector>

#include "sched/profile.h"

namespace ditserve::runtime {

struct ShapeKey {
  std::string model;
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::int64_t frames = 0;

  double work() const { return static_cast<double>(frames) * height * width; }
  bool operator==(const ShapeKey&) const = default;
};

// What a device costs before anything is measured.
struct DevicePrior {
  double step_s_per_work = 2e-7;  // one DoP-1 step, seconds per unit of work()
  double decode_s_per_work = 2e-7;
  double encode_s = 0.05;
  double move_share = 0.02;  // moving the state, as a share of a DoP-1 step
  // t(k) / t(1) of a step, and of a patch-parallel decode: CPU devices of one process run
  // a group's members in turn, so a group is never faster; GPUs split the work and pay for
  // the exchanges.
  bool parallel_speedup = false;
  double step_ratio(int dop) const;
};

class ProfileEstimator {
 public:
  // `base` may have no shapes.
  ProfileEstimator(sched::Profile base, DevicePrior prior);

  const sched::Profile& profile() const { return profile_; }
  // The index of `key`'s shape, or -1. Shapes of a given profile match by size when the
  // profile's model is key.model.
  int find(const ShapeKey& key) const;
  // What find()'s shape would be, or an estimate with step DoPs 1..max_dop and decode
  // DoPs 1..max_decode_dop when there is none (nothing is added).
  sched::ShapeProfile figures(const ShapeKey& key, int max_dop, int max_decode_dop) const;
  // Adds figures(key, max_dop, max_decode_dop) (REQUIRES: find(key) < 0) and returns its
  // index.
  int add(const ShapeKey& key, int max_dop, int max_decode_dop);

  // Observations of shape `shape`; each returns the indices of the shapes whose figures
  // changed (estimates of other shapes follow a new observation).
  std::vector<int> observe_step(int shape, int dop, double seconds_per_step);
  std::vector<int> observe_encode(int shape, double seconds);
  std::vector<int> observe_decode(int shape, int dop, double seconds);
  std::vector<int> observe_move(int shape, double seconds);

  // Weight of a new observation against the running estimate.
  static constexpr double kSmoothing = 0.3;

 private:
  struct Known {  // which figures of a shape are measured, not estimated
    ShapeKey key;
    std::vector<int> step_dops;    // measured step_s DoPs
    std::vector<int> decode_dops;  // measured decode_s DoPs
    bool encode = false;
    bool move = false;
  };

  sched::ShapeProfile estimate(const ShapeKey& key, int max_dop, int max_decode_dop) const;
  // Re-derives every estimated figure from the measured ones; returns the changed shapes.
  std::vector<int> refresh();
  static double blend(double old_value, double seen, bool first);

  sched::Profile profile_;
  std::vector<Known> known_;  // by shape index
  DevicePrior prior_;
  // Engine-wide rates learnt from observations (start at the prior).
  double step_rate_;    // DoP-1 seconds per unit of work
  double decode_rate_;  // DoP-1 seconds per unit of work
  double encode_s_;
  double move_share_;
  bool step_seen_ = false;  // whether each rate has been observed yet
  bool decode_seen_ = false;
  bool encode_seen_ = false;
  bool move_seen_ = false;
};

}  // namespace ditserve::runtime
