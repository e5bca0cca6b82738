// Wan's flow-matching schedule and solvers: the sigma/timestep tables, UniPC and Euler on
// an ODE with a closed-form solution (convergence orders), and GenerationState running
// each sampler.

#include "pipeline/flow_matching.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/copy.h"
#include "models/interfaces.h"
#include "pipeline/rectified_flow.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

TEST(FlowSigmasTest, WansShiftedSchedule) {
  const std::vector<double> s = flow_sigmas(50, 5.0);
  ASSERT_EQ(s.size(), 51u);
  const double s0 = static_cast<float>(0.999);
  EXPECT_NEAR(s[0], 5 * s0 / (1 + 4 * s0), 1e-7);
  const double s25 = s0 - s0 * 25 / 50;
  EXPECT_NEAR(s[25], 5 * s25 / (1 + 4 * s25), 1e-7);
  EXPECT_EQ(s[50], 0.0);
  for (std::size_t i = 0; i + 1 < s.size(); ++i) EXPECT_GT(s[i], s[i + 1]);
  const std::vector<float> t = flow_timesteps(50, 5.0);
  ASSERT_EQ(t.size(), 50u);
  EXPECT_EQ(t[0], 999.0f);  // trunc(999.7998...)
  EXPECT_EQ(t[25], std::trunc(1000 * 5 * s25 / (1 + 4 * s25)));
  EXPECT_EQ(t[49], std::trunc(1000 * 5 * (s0 / 50) / (1 + 4 * (s0 / 50))));
  // shift 1: plain linspace.
  EXPECT_NEAR(flow_sigmas(4, 1.0)[2], s0 / 2, 1e-7);
}

TEST(FlowSigmasTest, BadStepsAndShiftAreNamed) {
  const auto message = [](auto fn) {
    try {
      fn();
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_TRUE(message([] { flow_sigmas(0, 5.0); }).starts_with("steps:"));
  EXPECT_TRUE(message([] { flow_sigmas(10, 0.0); }).starts_with("shift:"));
  EXPECT_TRUE(message([] { parse_sampler("ddim"); }).starts_with("sampler:"));
  EXPECT_EQ(parse_sampler("unipc"), SamplerKind::unipc);
  EXPECT_EQ(parse_sampler("euler"), SamplerKind::euler);
  EXPECT_EQ(parse_sampler("rflow"), SamplerKind::rectified_flow);
}

// Data x0 ~ N(mu, s^2) and x_sigma = (1 - sigma) x0 + sigma noise: the flow ODE's solution
// through x(1) = z is x(sigma) = (1 - sigma) mu + sqrt((1 - sigma)^2 s^2 + sigma^2) z, and
// its velocity field is v(x, sigma) = -mu + g'(sigma) / (2 g(sigma)) (x - (1 - sigma) mu).
struct GaussianFlow {
  double mu = 0.3, s = 0.5;
  double g(double sigma) const { return (1 - sigma) * (1 - sigma) * s * s + sigma * sigma; }
  double exact(double sigma, double z) const { return (1 - sigma) * mu + std::sqrt(g(sigma)) * z; }
  double velocity(double x, double sigma) const {
    const double dg = -2 * (1 - sigma) * s * s + 2 * sigma;
    return -mu + dg / (2 * g(sigma)) * (x - (1 - sigma) * mu);
  }
};

std::vector<float> velocities(const GaussianFlow& f, const Tensor& x, double sigma) {
  std::vector<float> v;
  for (const float e : x.to_vector_f32()) v.push_back(static_cast<float>(f.velocity(e, sigma)));
  return v;
}

// Max error at sigma = 0 after integrating from the exact x(sigma_0) with `kind`.
double solve_error(SamplerKind kind, int steps, double shift) {
  const auto be = make_backend(Device::cpu());
  const GaussianFlow f;
  const std::vector<double> zs = {-1.5, -0.3, 0.7, 2.0};
  const std::vector<double> sigmas = flow_sigmas(steps, shift);
  std::vector<float> x0;
  for (const double z : zs) x0.push_back(static_cast<float>(f.exact(sigmas[0], z)));
  Tensor x = Tensor::from_vector(x0, {4});
  FlowUniPC unipc(sigmas);
  for (int i = 0; i < steps; ++i) {
    const Tensor v = Tensor::from_vector(velocities(f, x, sigmas[i]), {4});
    x = kind == SamplerKind::unipc ? unipc.step(*be, v, x)
                                   : flow_euler_step(*be, x, v, sigmas[i], sigmas[i + 1]);
  }
  EXPECT_TRUE(kind != SamplerKind::unipc || unipc.done());
  double err = 0;
  const std::vector<float> out = x.to_vector_f32();
  for (std::size_t k = 0; k < zs.size(); ++k)
    err = std::max(err, std::abs(out[k] - f.exact(0, zs[k])));
  return err;
}

// Error tables (max over z) from unipc_reference.py, shift 1: 3.5e-3, 8.7e-4, 2.0e-4 at
// 32, 64, 128 steps (ratio ~4.1); Euler halves its error per doubling.
TEST(FlowUniPCTest, ConvergesAtSecondOrder) {
  const double e32 = solve_error(SamplerKind::unipc, 32, 1.0);
  const double e64 = solve_error(SamplerKind::unipc, 64, 1.0);
  const double e128 = solve_error(SamplerKind::unipc, 128, 1.0);
  SCOPED_TRACE("errors " + std::to_string(e32) + ", " + std::to_string(e64) + ", " +
               std::to_string(e128));
  EXPECT_GT(e32 / e64, 3.5);  // >= 2nd order: halving the step divides the error by ~4
  EXPECT_GT(e64 / e128, 3.5);
  EXPECT_LT(e128, 3e-4);
  const double u64 = solve_error(SamplerKind::euler, 64, 1.0);
  const double u128 = solve_error(SamplerKind::euler, 128, 1.0);
  EXPECT_GT(u64 / u128, 1.7);  // 1st order
  EXPECT_LT(u64 / u128, 2.3);
  EXPECT_GT(u128, 20 * e128);
}

// The samples after each of 6 steps at shift 5 from x(sigma_0) for z = 0.7, as Wan's
// scheduler computes them (unipc_reference.py, float64).
TEST(FlowUniPCTest, MatchesWansSchedulerSequence) {
  const auto be = make_backend(Device::cpu());
  const GaussianFlow f;
  const std::vector<double> expected = {0.6845279119284766, 0.6640829952678706,
                                        0.6357753378776358, 0.5943647710943593,
                                        0.5341688119870118, 0.45383447375071206};
  const std::vector<double> sigmas = flow_sigmas(6, 5.0);
  Tensor x = Tensor::from_vector({static_cast<float>(f.exact(sigmas[0], 0.7))}, {1});
  EXPECT_NEAR(x.to_vector_f32()[0], 0.6999199404865953, 1e-6);
  FlowUniPC unipc(sigmas);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    x = unipc.step(*be, Tensor::from_vector(velocities(f, x, sigmas[i]), {1}), x);
    EXPECT_NEAR(x.to_vector_f32()[0], expected[i], 2e-5) << "step " << i;
  }
}

// A point mass at c: the flow is straight, x0 = x - sigma v = c at every step, and each
// UniPC update is exact: after the first step x = (sigma_1 / sigma_0) x + (1 - sigma_1 /
// sigma_0) c by hand (order 1: alpha_t (1 - e^-h) = 1 - sigma_t / sigma_s).
TEST(FlowUniPCTest, StraightFlowByHand) {
  const auto be = make_backend(Device::cpu());
  const double c = 0.25, noise = -1.0;
  const std::vector<double> sigmas = flow_sigmas(6, 3.0);
  FlowUniPC unipc(sigmas);
  Tensor x =
      Tensor::from_vector({static_cast<float>((1 - sigmas[0]) * c + sigmas[0] * noise)}, {1});
  for (std::size_t i = 0; i + 1 < sigmas.size(); ++i) {
    const float v = static_cast<float>((x.to_vector_f32()[0] - c) / sigmas[i]);
    x = unipc.step(*be, Tensor::from_vector({v}, {1}), x);
    const double expected = (1 - sigmas[i + 1]) * c + sigmas[i + 1] * noise;
    EXPECT_NEAR(x.to_vector_f32()[0], expected, 1e-5) << "step " << i;
  }
}

// The DiT of the CFG batch: returns `v` for the prompt row and 0 for the null row, so the
// guided velocity is guidance * v.
class ConstantFlow final : public DiffusionTransformer {
 public:
  explicit ConstantFlow(float v) : v_(v) {}
  std::int64_t latent_channels() const override { return 1; }
  Tensor forward(const DenoiseInputs& in) override {
    timesteps.push_back(in.timesteps.to_vector_f32()[0]);
    std::vector<float> out(static_cast<std::size_t>(in.latents.numel()), 0.0f);
    for (std::size_t i = 0; i < out.size() / 2; ++i) out[i] = v_;
    return Tensor::from_vector(out, in.latents.shape());
  }
  std::vector<float> timesteps;

 private:
  float v_;
};

TEST(GenerationStateTest, RunsEachSampler) {
  const auto be = make_backend(Device::cpu());
  for (const SamplerKind kind : {SamplerKind::unipc, SamplerKind::euler}) {
    SamplerOptions o;
    o.steps = 5;
    o.guidance = 2.0f;
    o.sampler = kind;
    o.shift = 3.0;
    GenerationState state(
        Tensor::from_vector({1.0f}, {1, 1, 1, 1, 1}), Tensor::from_vector({0, 0}, {2, 1, 1}),
        [] {
          Tensor t = Tensor::empty_host({2}, DType::i32);
          t.data<std::int32_t>()[0] = t.data<std::int32_t>()[1] = 1;
          return t;
        }(),
        o);
    ConstantFlow dit(0.5f);
    while (!state.done()) state.step(*be, dit);
    EXPECT_EQ(dit.timesteps, flow_timesteps(5, 3.0));
    // A constant guided flow 2 * 0.5 integrates exactly from sigma_0 to 0 by both solvers.
    EXPECT_NEAR(state.latents().to_vector_f32()[0], 1.0 - flow_sigmas(5, 3.0)[0], 1e-5)
        << sampler_name(kind);
  }
}

}  // namespace
}  // namespace ditserve
