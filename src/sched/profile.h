#pragma once
// Profiles: what one step, one encode and one decode of each request shape cost on each
// degree of parallelism (DoP). Written by `ditserve profile` from measurements, or by hand;
// read here. The JSON schema is in docs/SCHEDULING.md. All times are seconds in memory and
// milliseconds in the file.

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace ditserve::sched {

struct ShapeProfile {
  std::string name;  // what workloads and traces call this shape, e.g. "720p" or "1024x1024"
  // The model serving this shape when a profile mixes models (e.g. Open-Sora and Wan on
  // one cluster); empty: the profile's model. Shapes are still told apart by name alone.
  std::string model;
  int height = 0;
  int width = 0;
  int frames = 1;                  // 1 for images
  std::map<int, double> step_s;    // DoP -> seconds per denoising step (one CFG step)
  double encode_s = 0;             // text encode, one request, on one device
  std::map<int, double> decode_s;  // VAE DoP -> seconds for the whole decode
  double move_s = 0;               // moving the request's latents to a different group

  // REQUIRES: the DoP is in step_s / decode_s (a missing one throws, naming the shape).
  double step(int dop) const;
  double decode(int dop) const;
  // The largest decode DoP in the profile that is <= dop (decode on a group of that size).
  int decode_dop_at_most(int dop) const;
  int max_dop() const { return step_s.rbegin()->first; }
  double fastest_step() const;
  // Solo latency on one device: encode + steps x step(1) + decode(1).
  double solo_latency(int steps) const;
  // DDiT's optimal DoP: keep doubling from 1 while the gain of the doubling,
  // z = 1 - t(2k)/t(k), is at least `min_gain`; never past max_dop. (docs/SCHEDULING.md)
  int optimal_dop(double min_gain, int max_devices) const;
};

// The gain threshold consistent with every optimal DoP that DDiT reports (SCHEDULING.md).
inline constexpr double kDefaultMinGain = 0.40;

struct Profile {
  std::string model;
  std::string hardware;
  std::vector<ShapeProfile> shapes;
  // Bumped by every change a live Scheduler makes (add_shape, update_shape), so a policy
  // that caches per-shape figures knows when to recompute them.
  int revision = 0;

  // Index of the shape called `name`; throws InvalidInput naming `where` if absent.
  int shape_index(const std::string& name, const std::string& where) const;
  int find_shape(const std::string& name) const;  // -1 if absent
  const ShapeProfile& shape(int index) const { return shapes.at(index); }
  // The model of shape `index`: its own model field, else the profile's.
  const std::string& model_of(int index) const;
  // Throws InvalidInput if some shape has a DoP above `devices`.
  void check_fits(int devices) const;
};

// Throws InvalidInput naming `source` and the offending field.
Profile parse_profile(const nlohmann::json& j, const std::string& source);
Profile load_profile(const std::string& path);
nlohmann::json profile_to_json(const Profile& profile);

}  // namespace ditserve::sched
