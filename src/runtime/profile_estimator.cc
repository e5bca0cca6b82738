#include "runtime/profile_estimator.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

namespace ditserve::runtime {
namespace {

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// Every unmeasured DoP of `table` re-derived: from the nearest measured DoP by the prior's
// curve, or from `one` (the DoP-1 estimate) when none is measured.
void follow_measured(std::map<int, double>& table, const std::vector<int>& measured, double one,
                     const DevicePrior& prior) {
  for (auto& [dop, t] : table) {
    if (contains(measured, dop)) continue;
    if (measured.empty()) {
      t = one * prior.step_ratio(dop);
      continue;
    }
    int nearest = measured.front();
    for (int m : measured)
      if (std::abs(m - dop) < std::abs(nearest - dop)) nearest = m;
    t = table.at(nearest) * prior.step_ratio(dop) / prior.step_ratio(nearest);
  }
}

std::string shape_name(const ShapeKey& key) {
  return key.model + ":" + std::to_string(key.width) + "x" + std::to_string(key.height) + "x" +
         std::to_string(key.frames);
}

}  // namespace

double DevicePrior::step_ratio(int dop) const {
  const double k = dop;
  return parallel_speedup ? 0.1 + 0.9 / k : 1.0 + 0.1 * (k - 1.0);
}

ProfileEstimator::ProfileEstimator(sched::Profile base, DevicePrior prior)
    : profile_(std::move(base)),
      prior_(prior),
      step_rate_(prior.step_s_per_work),
      decode_rate_(prior.decode_s_per_work),
      encode_s_(prior.encode_s),
      move_share_(prior.move_share) {
  for (const sched::ShapeProfile& s : profile_.shapes) {
    Known k;
    k.key = {profile_.model, s.height, s.width, s.frames};
    for (const auto& [dop, t] : s.step_s) k.step_dops.push_back(dop);
    for (const auto& [dop, t] : s.decode_s) k.decode_dops.push_back(dop);
    k.encode = k.move = true;
    known_.push_back(std::move(k));
  }
  // Measured shapes set the rates that estimates of the others start from.
  if (!profile_.shapes.empty()) {
    double step = 0, decode = 0, encode = 0;
    for (std::size_t i = 0; i < profile_.shapes.size(); ++i) {
      const sched::ShapeProfile& s = profile_.shapes[i];
      const double work = known_[i].key.work();
      step += s.step(1) / work;
      decode += s.decode(1) / work;
      encode += s.encode_s;
    }
    const double n = static_cast<double>(profile_.shapes.size());
    step_rate_ = step / n;
    decode_rate_ = decode / n;
    encode_s_ = encode / n;
  }
}

int ProfileEstimator::find(const ShapeKey& key) const {
  for (std::size_t i = 0; i < known_.size(); ++i)
    if (known_[i].key == key) return static_cast<int>(i);
  return -1;
}

sched::ShapeProfile ProfileEstimator::figures(const ShapeKey& key, int max_dop, int max_decode_dop) const {
  const int i = find(key);
  return i >= 0 ? profile_.shapes[static_cast<std::size_t>(i)] : estimate(key, max_dop, max_decode_dop);
}

sched::ShapeProfile ProfileEstimator::estimate(const ShapeKey& key, int max_dop, int max_decode_dop) const {
  sched::ShapeProfile s;
  s.name = shape_name(key);
  s.height = static_cast<int>(key.height);
  s.width = static_cast<int>(key.width);
  s.frames = static_cast<int>(key.frames);
  const double one = step_rate_ * key.work();
  for (int k = 1; k <= max_dop; ++k) s.step_s[k] = one * prior_.step_ratio(k);
  const double decode_one = decode_rate_ * key.work();
  for (int k = 1; k <= std::max(max_decode_dop, 1); ++k) s.decode_s[k] = decode_one * prior_.step_ratio(k);
  s.encode_s = encode_s_;
  s.move_s = move_share_ * one;
  return s;
}

int ProfileEstimator::add(const ShapeKey& key, int max_dop, int max_decode_dop) {
  profile_.shapes.push_back(estimate(key, max_dop, max_decode_dop));
  Known k;
  k.key = key;
  known_.push_back(std::move(k));
  return static_cast<int>(profile_.shapes.size()) - 1;
}

double ProfileEstimator::blend(double old_value, double seen, bool first) {
  return first ? seen : (1.0 - kSmoothing) * old_value + kSmoothing * seen;
}

std::vector<int> ProfileEstimator::observe_step(int shape, int dop, double seconds) {
  sched::ShapeProfile& s = profile_.shapes.at(static_cast<std::size_t>(shape));
  Known& k = known_[static_cast<std::size_t>(shape)];
  const bool first = !contains(k.step_dops, dop);
  s.step_s[dop] = blend(s.step_s[dop], seconds, first);
  if (first) k.step_dops.push_back(dop);
  step_rate_ = blend(step_rate_, seconds / prior_.step_ratio(dop) / k.key.work(), !step_seen_);
  step_seen_ = true;
  std::vector<int> changed = refresh();
  if (!contains(changed, shape)) changed.push_back(shape);
  return changed;
}

std::vector<int> ProfileEstimator::observe_encode(int shape, double seconds) {
  // A text encode costs the same whatever the video's shape: one engine-wide figure.
  encode_s_ = blend(encode_s_, seconds, !encode_seen_);
  encode_seen_ = true;
  for (Known& k : known_) k.encode = false;
  (void)shape;
  return refresh();
}

std::vector<int> ProfileEstimator::observe_decode(int shape, int dop, double seconds) {
  sched::ShapeProfile& s = profile_.shapes.at(static_cast<std::size_t>(shape));
  Known& k = known_[static_cast<std::size_t>(shape)];
  const bool first = !contains(k.decode_dops, dop);
  s.decode_s[dop] = blend(s.decode_s[dop], seconds, first);
  if (first) k.decode_dops.push_back(dop);
  decode_rate_ = blend(decode_rate_, seconds / prior_.step_ratio(dop) / k.key.work(), !decode_seen_);
  decode_seen_ = true;
  std::vector<int> changed = refresh();
  if (!contains(changed, shape)) changed.push_back(shape);
  return changed;
}

std::vector<int> ProfileEstimator::observe_move(int shape, double seconds) {
  sched::ShapeProfile& s = profile_.shapes.at(static_cast<std::size_t>(shape));
  Known& k = known_[static_cast<std::size_t>(shape)];
  s.move_s = blend(s.move_s, seconds, !k.move);
  k.move = true;
  move_share_ = blend(move_share_, seconds / s.step(1), !move_seen_);
  move_seen_ = true;
  std::vector<int> changed = refresh();
  if (!contains(changed, shape)) changed.push_back(shape);
  return changed;
}

std::vector<int> ProfileEstimator::refresh() {
  std::vector<int> changed;
  for (std::size_t i = 0; i < profile_.shapes.size(); ++i) {
    sched::ShapeProfile& s = profile_.shapes[i];
    const Known& k = known_[i];
    const sched::ShapeProfile before = s;
    follow_measured(s.step_s, k.step_dops, step_rate_ * k.key.work(), prior_);
    follow_measured(s.decode_s, k.decode_dops, decode_rate_ * k.key.work(), prior_);
    if (!k.encode) s.encode_s = encode_s_;
    if (!k.move) s.move_s = move_share_ * s.step(1);
    if (s.step_s != before.step_s || s.decode_s != before.decode_s || s.encode_s != before.encode_s ||
        s.move_s != before.move_s)
      changed.push_back(static_cast<int>(i));
  }
  return changed;
}

}  // namespace ditserve::runtime
