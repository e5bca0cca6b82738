#include "models/graphed_transformer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "models/dit_testing.h"
#include "models/stdit3.h"
#include "models/wan_transformer.h"
#include "support/random.h"
#include "tensor/error.h"

// GraphedTransformer on the CPU backend, where a "capture" runs the work and a replay runs
// it again (kernels/captured_work.h): the same decorator logic as on CUDA. Outputs equal
// the wrapped model's over steps whose latents and timesteps change (they would repeat the
// captured step's if inputs were not copied in), a new key makes a new capture, the bound
// evicts, and a capture that fails names the cause and leaves a usable model. A model that
// uploads host values in a step (what STDiT3 did with fps) fails its capture here too.

namespace ditserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using testing::caption_lengths;
using testing::strong_parameters;

class GraphedSTDiT3Test : public ::testing::Test {
 protected:
  GraphedSTDiT3Test()
      : be_(make_backend(Device::cpu())),
        source_(random_weights(strong_parameters(stdit3_parameters(stdit3_tiny())), 5)),
        model_(stdit3_tiny(), WeightLoader(*source_, *be_, DType::f32)) {}

  // Step `step` of a request: latents and timesteps change with it, captions do not.
  static DenoiseInputs inputs(int step, const Shape& latents = {2, 4, 3, 6, 7}) {
    const std::int64_t b = latents[0];
    DenoiseInputs in;
    in.latents = testing::random_tensor(latents, 100 + static_cast<std::uint32_t>(step));
    in.timesteps = Tensor::from_vector(std::vector<float>(static_cast<std::size_t>(b),
                                                          1000.0f - 90.0f * static_cast<float>(step)),
                                       {b});
    in.captions = testing::random_tensor({b, 6, stdit3_tiny().caption_channels}, 7);
    in.caption_lengths = b == 2 ? caption_lengths({6, 4}) : caption_lengths({5});
    in.fps = 24.0f;
    in.height = latents[3] * 8;
    in.width = latents[4] * 8;
    return in;
  }

  std::unique_ptr<Backend> be_;
  std::unique_ptr<WeightSource> source_;
  STDiT3 model_;
};

TEST_F(GraphedSTDiT3Test, EveryStepEqualsTheWrappedModelAndOutputsStayTheCallers) {
  GraphedTransformer graphed(model_, *be_);
  std::vector<Tensor> kept;
  std::vector<std::vector<float>> want;
  for (int step = 0; step < 5; ++step) {
    const DenoiseInputs in = inputs(step);  // latents [2, 4, 3, 6, 7]: H and W padded
    want.push_back(model_.forward(in).to_vector_f32());
    kept.push_back(graphed.forward(in));
    EXPECT_EQ(kept.back().to_vector_f32(), want.back()) << "step " << step;
  }
  EXPECT_NE(want[2], want[3]);  // the steps differ, so a stale replay would show
  for (std::size_t i = 0; i < kept.size(); ++i)
    EXPECT_EQ(kept[i].to_vector_f32(), want[i]) << "output of step " << i << " was overwritten";
  const GraphedTransformerStats& s = graphed.stats();
  EXPECT_EQ(s.eager_calls, 1u);
  EXPECT_EQ(s.captures, 1u);
  EXPECT_EQ(s.replays, 4u);
  EXPECT_EQ(s.capture_failures, 0u);
}

TEST_F(GraphedSTDiT3Test, EachKeyGetsItsOwnCaptureAndStepsInTurnStayCorrect) {
  GraphedTransformer graphed(model_, *be_);
  // Two requests of different shapes (and a third differing in fps alone) stepping in
  // turn: each key runs eagerly once, is captured at its second call, replayed after.
  for (int step = 0; step < 3; ++step) {
    for (const Shape& shape : {Shape{2, 4, 3, 6, 7}, Shape{1, 4, 2, 4, 4}}) {
      const DenoiseInputs in = inputs(step, shape);
      EXPECT_EQ(graphed.forward(in).to_vector_f32(), model_.forward(in).to_vector_f32())
          << "step " << step << " shape " << shape_str(shape);
    }
    DenoiseInputs in = inputs(step);
    in.fps = 12.0f;
    EXPECT_EQ(graphed.forward(in).to_vector_f32(), model_.forward(in).to_vector_f32());
  }
  EXPECT_EQ(graphed.stats().captures, 3u);
  EXPECT_EQ(graphed.stats().replays, 6u);  // the capturing call replays too
  EXPECT_EQ(graphed.cached_keys(), 3u);
}

TEST_F(GraphedSTDiT3Test, TheBoundEvictsTheLeastRecentlyUsedKey) {
  GraphedTransformerOptions options;
  options.max_graphs = 2;
  GraphedTransformer graphed(model_, *be_, options);
  const Shape a{1, 4, 2, 4, 4}, b{1, 4, 3, 4, 4}, c{1, 4, 1, 4, 6};
  for (const Shape& shape : {a, a, b, b, a, c}) (void)graphed.forward(inputs(1, shape));
  // c evicted b (a was used more recently): two keys kept, a still replays.
  EXPECT_EQ(graphed.stats().evictions, 1u);
  EXPECT_EQ(graphed.cached_keys(), 2u);
  const std::size_t replays = graphed.stats().replays;
  EXPECT_EQ(graphed.forward(inputs(2, a)).to_vector_f32(), model_.forward(inputs(2, a)).to_vector_f32());
  EXPECT_EQ(graphed.stats().replays, replays + 1);
  // b starts over: eager first, and its return evicts the least recent (c).
  const std::size_t eager = graphed.stats().eager_calls;
  EXPECT_EQ(graphed.forward(inputs(3, b)).to_vector_f32(), model_.forward(inputs(3, b)).to_vector_f32());
  EXPECT_EQ(graphed.stats().eager_calls, eager + 1);
  EXPECT_EQ(graphed.stats().evictions, 2u);
  EXPECT_THROW(GraphedTransformer(model_, *be_, GraphedTransformerOptions{0}), InvalidArgument);
}

TEST_F(GraphedSTDiT3Test, InputsTheModelRefusesGetItsErrorAndLeaveNoKey) {
  GraphedTransformer graphed(model_, *be_);
  DenoiseInputs bad = inputs(0);
  bad.fps = -1.0f;
  EXPECT_THROW((void)graphed.forward(bad), InvalidArgument);
  EXPECT_EQ(graphed.cached_keys(), 0u);
}

// Adds a host-uploaded constant in every call: fine eagerly, impossible to capture.
class UploadingModel final : public DiffusionTransformer {
 public:
  explicit UploadingModel(Backend& be) : be_(be), host_(make_backend(Device::cpu(0))) {}
  std::int64_t latent_channels() const override { return 4; }
  Tensor forward(const DenoiseInputs& in) override {
    const Tensor one = transfer(*host_, Tensor::from_vector({1.0f}, {1}), be_);
    return add(be_, in.latents, one);
  }

 private:
  Backend& be_;
  std::unique_ptr<Backend> host_;
};

TEST(GraphedTransformerTest, AFailedCaptureNamesKeyAndCauseAndTheKeyRunsEagerlyAfter) {
  const auto be = make_backend(Device::cpu(1));
  UploadingModel model(*be);
  GraphedTransformer graphed(model, *be);
  const auto in = [&](std::uint32_t seed) {
    DenoiseInputs d;
    d.latents = transfer(*make_backend(Device::cpu(0)), testing::random_tensor({1, 4, 1, 2, 2}, seed), *be);
    d.timesteps = transfer(*make_backend(Device::cpu(0)), Tensor::from_vector({500.0f}, {1}), *be);
    d.captions = transfer(*make_backend(Device::cpu(0)), testing::random_tensor({1, 3, 8}, 1), *be);
    d.caption_lengths = transfer(*make_backend(Device::cpu(0)), caption_lengths({3}), *be);
    return d;
  };
  const auto plus_one = [](const DenoiseInputs& d) {
    std::vector<float> v = d.latents.to_vector_f32();
    for (float& x : v) x += 1.0f;
    return v;
  };
  EXPECT_EQ(graphed.forward(in(1)).to_vector_f32(), plus_one(in(1)));  // eager
  try {
    (void)graphed.forward(in(2));
    FAIL() << "expected the capture to fail";
  } catch (const Error& e) {
    EXPECT_THAT(std::string(e.what()), AllOf(HasSubstr("latents=f32[1, 4, 1, 2, 2]"),
                                             HasSubstr("transfer"), HasSubstr("inside a capture"),
                                             HasSubstr("runs eagerly from now on")));
  }
  EXPECT_FALSE(is_capturing(*be));
  EXPECT_EQ(graphed.forward(in(3)).to_vector_f32(), plus_one(in(3)));
  EXPECT_EQ(graphed.stats().capture_failures, 1u);
  EXPECT_THAT(graphed.stats().last_failure, HasSubstr("inside a capture"));
  EXPECT_EQ(graphed.stats().captures, 0u);

  // Where the caller asks for it, the failing call itself returns the eager result.
  GraphedTransformerOptions options;
  options.on_capture_failure = GraphedTransformerOptions::OnCaptureFailure::run_eagerly;
  GraphedTransformer lenient(model, *be, options);
  (void)lenient.forward(in(1));
  EXPECT_EQ(lenient.forward(in(4)).to_vector_f32(), plus_one(in(4)));
  EXPECT_EQ(lenient.stats().capture_failures, 1u);
}

TEST(GraphedWanTest, StepsWithPaddedCaptionsEqualTheWrappedModel) {
  const auto be = make_backend(Device::cpu());
  const WanConfig config = wan_tiny();
  const auto source = random_weights(strong_parameters(wan_parameters(config, WanLayout::original)), 11);
  WanTransformer model(config, WeightLoader(*source, *be, DType::f32));
  GraphedTransformer graphed(model, *be);
  for (int step = 0; step < 4; ++step) {
    DenoiseInputs in;
    in.latents = testing::random_tensor({2, 16, 2, 4, 4}, 40 + static_cast<std::uint32_t>(step));
    in.timesteps = Tensor::from_vector({900.0f - 100.0f * static_cast<float>(step), 500.0f}, {2});
    in.captions = testing::random_tensor({2, 5, config.text_dim}, 2);  // < text_len: padded
    in.caption_lengths = caption_lengths({5, 3});
    EXPECT_EQ(graphed.forward(in).to_vector_f32(), model.forward(in).to_vector_f32()) << "step " << step;
  }
  EXPECT_EQ(graphed.stats().captures, 1u);
  EXPECT_EQ(graphed.stats().replays, 3u);
}

TEST(DeviceTableCacheTest, MakesOncePerKeyKeepsABoundedNumberAndRetainsDuringCaptures) {
  const auto be = make_backend(Device::cpu());
  DeviceTableCache<int> cache(2);
  int made = 0;
  const auto make = [&] {
    ++made;
    return Tensor::from_vector({static_cast<float>(made)}, {1});
  };
  const Tensor first = cache.get(*be, 1, make);
  EXPECT_EQ(cache.get(*be, 1, make).storage(), first.storage());
  (void)cache.get(*be, 2, make);
  (void)cache.get(*be, 3, make);  // drops key 1
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(made, 3);
  (void)cache.get(*be, 1, make);
  EXPECT_EQ(made, 4);
  // A table handed out inside a capture outlives its eviction for as long as the capture.
  std::weak_ptr<Storage> captured;
  const auto work = capture_work(*be, [&] { captured = cache.get(*be, 7, make).storage(); });
  (void)cache.get(*be, 8, make);
  (void)cache.get(*be, 9, make);  // key 7 dropped from the cache
  EXPECT_FALSE(captured.expired());
}

}  // namespace
}  // namespace ditserve
