#include "pipeline/rectified_flow.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/backend.h"
#include "models/interfaces.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

float bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

TEST(RectifiedFlow, ShiftRatioMatchesOpenSoraBf16Values) {
  EXPECT_EQ(rflow_shift_ratio(720, 1280, 51), 7.25f);     // exact 7.2618
  EXPECT_EQ(rflow_shift_ratio(144, 256, 51), 1.453125f);
  EXPECT_EQ(rflow_shift_ratio(720, 1280, 102), 10.25f);
  EXPECT_EQ(rflow_shift_ratio(720, 1280, 1), 1.875f);     // image: no time factor
  EXPECT_EQ(rflow_shift_ratio(512, 512, 16), 1.0f);       // < 17 frames: n clamped to 1
  EXPECT_EQ(rflow_shift_ratio(64, 64, 16), 0.125f);
}

TEST(RectifiedFlow, Timesteps720pMatchNotes) {
  const std::vector<float> ts = rflow_timesteps(30, 7.25f);
  ASSERT_EQ(ts.size(), 30u);
  // The f32 values that feed dt (notes §3).
  EXPECT_FLOAT_EQ(ts[0], 1000.0f);
  EXPECT_NEAR(ts[1], 995.266f, 1e-3);
  EXPECT_NEAR(ts[2], 990.244f, 1e-3);
  EXPECT_NEAR(ts[26], 527.273f, 1e-3);
  EXPECT_NEAR(ts[27], 446.154f, 1e-3);
  EXPECT_NEAR(ts[28], 341.176f, 1e-3);
  EXPECT_NEAR(ts[29], 200.0f, 1e-4);
  for (std::size_t i = 1; i < ts.size(); ++i) EXPECT_LT(ts[i], ts[i - 1]) << i;
  // What the model receives after Open-Sora's timestep.to(bf16).
  const float expected_bf16[30] = {1000, 996, 992, 984, 980, 972, 968, 960, 952, 944,
                                   936,  928, 916, 904, 892, 880, 864, 848, 828, 808,
                                   784,  756, 724, 688, 644, 592, 528, 446, 342, 200};
  for (int i = 0; i < 30; ++i) EXPECT_EQ(bf16(ts[i]), expected_bf16[i]) << i;
}

TEST(RectifiedFlow, UnshiftedScheduleIsLinearAndDtSumsToOne) {
  const std::vector<float> ts = rflow_timesteps(4, 1.0f);
  ASSERT_EQ(ts.size(), 4u);
  EXPECT_FLOAT_EQ(ts[0], 1000.0f);
  EXPECT_FLOAT_EQ(ts[1], 750.0f);
  EXPECT_FLOAT_EQ(ts[2], 500.0f);
  EXPECT_FLOAT_EQ(ts[3], 250.0f);
  EXPECT_FLOAT_EQ(rflow_dt(ts, 0), 0.25f);
  EXPECT_FLOAT_EQ(rflow_dt(ts, 3), 0.25f);  // last step: t_{N-1} / 1000
  const std::vector<float> shifted = rflow_timesteps(10, 3.0f);
  double sum = 0;
  for (std::size_t i = 0; i < shifted.size(); ++i) sum += rflow_dt(shifted, i);
  EXPECT_NEAR(sum, 1.0, 1e-6);  // integrates from t = 1 all the way to 0
}

TEST(RectifiedFlow, RejectsNonPositiveSteps) {
  for (int steps : {0, -3}) {
    try {
      rflow_timesteps(steps, 1.0f);
      FAIL() << "steps " << steps << " accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("steps"), std::string::npos) << e.what();
    }
  }
}

TEST(RectifiedFlow, NoiseIsSeededAndStandardNormal) {
  const Tensor a = gaussian_noise({3, 3333}, 7);  // odd count: last Box-Muller pair halved
  const Tensor b = gaussian_noise({3, 3333}, 7);
  const Tensor c = gaussian_noise({3, 3333}, 8);
  const std::vector<float> va = a.to_vector_f32();
  EXPECT_EQ(va, b.to_vector_f32());
  EXPECT_NE(va, c.to_vector_f32());
  double mean = 0, sq = 0;
  for (float v : va) {
    ASSERT_TRUE(std::isfinite(v));
    mean += v;
    sq += static_cast<double>(v) * v;
  }
  mean /= va.size();
  const double var = sq / va.size() - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.05);
  EXPECT_NEAR(var, 1.0, 0.05);
  // A prefix of a longer draw is the same draw: values do not depend on the shape.
  const std::vector<float> longer = gaussian_noise({10000}, 7).to_vector_f32();
  EXPECT_EQ(std::vector<float>(longer.begin(), longer.begin() + 100),
            std::vector<float>(va.begin(), va.begin() + 100));
}

TEST(RectifiedFlow, GuidanceArithmetic) {
  const auto be = make_backend(Device::cpu());
  const Tensor cond = Tensor::from_vector({1, 2, 3}, {3});
  const Tensor uncond = Tensor::from_vector({0.5f, 4, -1}, {3});
  const std::vector<float> v = apply_guidance(*be, cond, uncond, 7.0f).to_vector_f32();
  EXPECT_FLOAT_EQ(v[0], 0.5f + 7.0f * 0.5f);
  EXPECT_FLOAT_EQ(v[1], 4.0f + 7.0f * -2.0f);
  EXPECT_FLOAT_EQ(v[2], -1.0f + 7.0f * 4.0f);
  EXPECT_EQ(apply_guidance(*be, cond, uncond, 1.0f).to_vector_f32(), cond.to_vector_f32());
}

// Returns, per batch row b and channel c, value[b] + c, plus 4 "sigma" channels of 1e6
// that the sampler must drop; records what it was called with.
class FakeDiT final : public DiffusionTransformer {
 public:
  explicit FakeDiT(Backend& be) : be_(be) {}
  std::int64_t latent_channels() const override { return 4; }
  Tensor forward(const DenoiseInputs& in) override {
    seen_timesteps.push_back(in.timesteps.to_vector_f32());
    latents_shape = in.latents.shape();
    captions_shape = in.captions.shape();
    lengths = in.caption_lengths.to_vector_f32();
    fps = in.fps;
    height = in.height;
    Shape shape = in.latents.shape();
    shape[1] = 8;
    Tensor out = be_.empty(shape, DType::f32);
    const std::int64_t per_channel = shape_numel(shape) / (shape[0] * shape[1]);
    float* p = out.data<float>();
    for (std::int64_t b = 0; b < shape[0]; ++b)
      for (std::int64_t c = 0; c < shape[1]; ++c)
        for (std::int64_t i = 0; i < per_channel; ++i)
          *p++ = c < 4 ? value[b] + static_cast<float>(c) : 1e6f;
    return out;
  }

  float value[2] = {3.0f, 1.0f};  // cond, uncond
  std::vector<std::vector<float>> seen_timesteps;
  Shape latents_shape, captions_shape;
  std::vector<float> lengths;
  float fps = 0;
  std::int64_t height = 0;

 private:
  Backend& be_;
};

TEST(GenerationState, StepsIntegrateGuidedVelocity) {
  const auto be = make_backend(Device::cpu());
  SamplerOptions opt;
  opt.steps = 3;
  opt.guidance = 4.0f;
  opt.fps = 12.0f;
  opt.height = 32;
  opt.width = 48;
  opt.frames = 5;
  const Tensor z0 = gaussian_noise({1, 4, 2, 4, 6}, 1);
  Tensor lengths = Tensor::empty_host({2}, DType::i32);
  lengths.data<std::int32_t>()[0] = lengths.data<std::int32_t>()[1] = 3;
  GenerationState state(z0, Tensor::from_vector(std::vector<float>(2 * 3 * 8, 0.5f), {2, 3, 8}),
                        lengths, opt);
  FakeDiT dit(*be);
  ASSERT_EQ(state.num_steps(), 3u);
  const std::vector<float> ts = state.timesteps();
  EXPECT_EQ(ts, rflow_timesteps(3, rflow_shift_ratio(32, 48, 5)));

  std::vector<float> expected = z0.to_vector_f32();
  const std::int64_t per_channel = 2 * 4 * 6;
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_FALSE(state.done());
    EXPECT_EQ(state.step_index(), i);
    state.step(*be, dit);
    const float dt = rflow_dt(ts, i);
    for (std::size_t k = 0; k < expected.size(); ++k) {
      const float c = static_cast<float>(static_cast<std::int64_t>(k) / per_channel);
      const float cond = 3.0f + c, uncond = 1.0f + c;
      expected[k] += dt * (uncond + 4.0f * (cond - uncond));
    }
    EXPECT_EQ(dit.seen_timesteps.back(), (std::vector<float>{ts[i], ts[i]}));
  }
  EXPECT_TRUE(state.done());
  const std::vector<float> got = state.latents().to_vector_f32();
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], expected[k], 1e-5) << k;
  EXPECT_EQ(dit.latents_shape, (Shape{2, 4, 2, 4, 6}));  // the CFG batch [z, z]
  EXPECT_EQ(dit.captions_shape, (Shape{2, 3, 8}));
  EXPECT_EQ(dit.lengths, (std::vector<float>{3, 3}));
  EXPECT_EQ(dit.fps, 12.0f);
  EXPECT_EQ(dit.height, 32);
  EXPECT_THROW(state.step(*be, dit), InvalidArgument);
}

TEST(GenerationState, MovesBetweenDevicesKeepingValues) {
  const auto cpu0 = make_backend(Device::cpu(0));
  const auto cpu1 = make_backend(Device::cpu(1));
  SamplerOptions opt;
  opt.steps = 2;
  opt.height = opt.width = 16;
  opt.frames = 1;
  Tensor lengths = Tensor::empty_host({2}, DType::i32);
  lengths.data<std::int32_t>()[0] = lengths.data<std::int32_t>()[1] = 1;
  const Tensor z0 = gaussian_noise({1, 4, 1, 2, 2}, 3);
  GenerationState state(z0, Tensor::from_vector(std::vector<float>(2 * 1 * 8, 1.0f), {2, 1, 8}),
                        lengths, opt);
  GenerationState moved = std::move(state);
  moved.move_to(*cpu0, *cpu1);
  EXPECT_EQ(moved.latents().device(), Device::cpu(1));
  EXPECT_EQ(moved.captions().device(), Device::cpu(1));
  EXPECT_EQ(moved.caption_lengths().device(), Device::cpu(1));
  EXPECT_EQ(moved.latents().to_vector_f32(), z0.to_vector_f32());
  EXPECT_EQ(moved.caption_lengths().to_vector_f32(), (std::vector<float>{1, 1}));
}

TEST(GenerationState, RejectsMalformedInputs) {
  SamplerOptions opt;
  opt.steps = 1;
  opt.height = opt.width = 16;
  opt.frames = 1;
  Tensor lengths = Tensor::empty_host({2}, DType::i32);
  const Tensor captions = Tensor::from_vector(std::vector<float>(16, 0.0f), {2, 1, 8});
  EXPECT_THROW(GenerationState(gaussian_noise({4, 1, 2, 2}, 0), captions, lengths, opt),
               InvalidArgument);
  EXPECT_THROW(GenerationState(gaussian_noise({1, 4, 1, 2, 2}, 0), captions.narrow(0, 0, 1),
                               lengths, opt),
               InvalidArgument);
  opt.steps = 0;
  EXPECT_THROW(GenerationState(gaussian_noise({1, 4, 1, 2, 2}, 0), captions, lengths, opt),
               InvalidArgument);
}

}  // namespace
}  // namespace ditserve
