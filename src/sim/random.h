#pragma once
// A seeded generator whose draws are the same on every platform: std::mt19937_64 is
// specified exactly, the standard distributions are not, so the few we need are here.

#include <cmath>
#include <cstdint>
#include <random>

namespace ditserve::sim {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double exponential(double rate) { return -std::log1p(-uniform()) / rate; }
  double normal() {  // Box-Muller, one value per call
    const double u = 1.0 - uniform(), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
  // Gamma(shape, scale) by Marsaglia-Tsang; shape < 1 via the U^(1/shape) boost.
  double gamma(double shape, double scale) {
    if (shape < 1.0) return gamma(shape + 1.0, scale) * std::pow(1.0 - uniform(), 1.0 / shape);
    const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      const double x = normal(), v0 = 1.0 + c * x;
      if (v0 <= 0) continue;
      const double v = v0 * v0 * v0, u = 1.0 - uniform();
      if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v * scale;
    }
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace ditserve::sim
