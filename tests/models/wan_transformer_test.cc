#include "models/wan_transformer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/copy.h"
#include "models/dit_testing.h"
#include "support/random.h"
#include "support/renamed_source.h"
#include "tensor/error.h"

// The Wan 2.1 DiT on `tiny-wan` shapes: every stage's shapes, determinism by seed, the
// two public namings loading to the same function, the caption padding rule, and the
// errors for wrong-size checkpoints and inputs the model cannot take.

namespace ditserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using testing::caption_lengths;
using testing::strong_parameters;

class WanTransformerTest : public ::testing::Test {
 protected:
  WanTransformerTest()
      : config_(wan_tiny()),
        cpu_(make_backend(Device::cpu())),
        source_(random_weights(
            strong_parameters(wan_parameters(config_, WanLayout::original)), 11)) {}

  // latents [B, 16, T, H, W]; captions of 5 tokens (lengths 5 and 3).
  DenoiseInputs inputs(const Shape& latent_shape) const {
    const std::int64_t b = latent_shape[0];
    DenoiseInputs in;
    in.latents = testing::random_tensor(latent_shape, 1);
    std::vector<float> ts = {900.0f, 250.0f};
    ts.resize(static_cast<std::size_t>(b), 500.0f);
    in.timesteps = Tensor::from_vector(ts, {b});
    in.captions = testing::random_tensor({b, 5, config_.text_dim}, 2);
    in.caption_lengths = b == 1 ? caption_lengths({4}) : caption_lengths({5, 3});
    return in;
  }

  WanConfig config_;
  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<WeightSource> source_;
};

TEST_F(WanTransformerTest, ConfigsMatchTheReleases) {
  const WanConfig small = wan_t2v_1_3b(), large = wan_t2v_14b();
  EXPECT_EQ(small.dim, 1536);
  EXPECT_EQ(small.num_layers, 30);
  EXPECT_EQ(small.num_heads, 12);
  EXPECT_EQ(small.ffn_dim, 8960);
  EXPECT_EQ(large.dim, 5120);
  EXPECT_EQ(large.num_layers, 40);
  EXPECT_EQ(large.num_heads, 40);
  EXPECT_EQ(large.ffn_dim, 13824);
  // head_dim 128: 44 channels rotate with the frame, 42 with the row, 42 with the column.
  EXPECT_EQ(small.rope_dims(), (std::array<std::int64_t, 3>{44, 42, 42}));
  EXPECT_EQ(wan_tiny().rope_dims(), (std::array<std::int64_t, 3>{8, 8, 8}));
  // 1.3B: 30 blocks of 27 tensors + 15 others.
  EXPECT_EQ(wan_parameters(small, WanLayout::original).size(), 30u * 27u + 15u);
}

TEST_F(WanTransformerTest, NamesAreThePublicOnes) {
  std::set<std::string> original, diffusers;
  for (const ParamSpec& s : wan_parameters(config_, WanLayout::original)) original.insert(s.name);
  for (const ParamSpec& s : wan_parameters(config_, WanLayout::diffusers)) diffusers.insert(s.name);
  for (const char* name :
       {"patch_embedding.weight", "text_embedding.0.weight", "text_embedding.2.bias",
        "time_embedding.0.weight", "time_projection.1.weight", "blocks.1.self_attn.q.weight",
        "blocks.1.self_attn.norm_q.weight", "blocks.1.cross_attn.o.bias", "blocks.1.norm3.weight",
        "blocks.1.norm3.bias", "blocks.1.ffn.0.weight", "blocks.1.ffn.2.bias",
        "blocks.1.modulation", "head.head.weight", "head.modulation"}) {
    EXPECT_TRUE(original.contains(name)) << name;
  }
  for (const char* name :
       {"patch_embedding.bias", "condition_embedder.time_embedder.linear_1.weight",
        "condition_embedder.time_embedder.linear_2.bias", "condition_embedder.time_proj.weight",
        "condition_embedder.text_embedder.linear_1.weight", "blocks.0.attn1.to_q.weight",
        "blocks.0.attn1.norm_k.weight", "blocks.0.attn1.to_out.0.weight",
        "blocks.0.attn2.to_v.bias", "blocks.0.attn2.norm_q.weight", "blocks.0.norm2.weight",
        "blocks.0.ffn.net.0.proj.weight", "blocks.0.ffn.net.2.weight", "blocks.0.scale_shift_table",
        "proj_out.weight", "scale_shift_table"}) {
    EXPECT_TRUE(diffusers.contains(name)) << name;
  }
}

TEST_F(WanTransformerTest, ShapesThroughEveryStage) {
  WanTransformer model(config_, WeightLoader(*source_, *cpu_, DType::f32));
  EXPECT_EQ(model.layout(), WanLayout::original);
  const DenoiseInputs in = inputs({2, 16, 3, 4, 6});  // grid 3 x 2 x 3 = 18 tokens
  const WanStep step = model.prepare(in);
  EXPECT_EQ(step.grid, (std::array<std::int64_t, 3>{3, 2, 3}));
  EXPECT_EQ(step.time.shape(), (Shape{2, 96}));
  EXPECT_EQ(step.modulation.shape(), (Shape{2, 6, 96}));
  EXPECT_EQ(step.context.shape(), (Shape{2, config_.text_len, 96}));
  EXPECT_EQ(step.rope_angles.shape(), (Shape{18, 12}));
  Tensor x = model.embed(in.latents, step);
  ASSERT_EQ(x.shape(), (Shape{2, 18, 96}));
  for (std::int64_t b = 0; b < config_.num_layers; ++b) {
    const Tensor qkv = model.attention_inputs(b, x, 0, step);
    ASSERT_EQ(qkv.shape(), (Shape{2, 18, 3, 4, 24})) << "block " << b;
    const Tensor a = attention(*cpu_, qkv.select(2, 0), qkv.select(2, 1), qkv.select(2, 2));
    x = model.finish_block(b, x, a, step);
    ASSERT_EQ(x.shape(), (Shape{2, 18, 96})) << "block " << b;
  }
  const Tensor out = model.final(x, step);
  EXPECT_EQ(out.shape(), (Shape{2, 16, 3, 4, 6}));
  EXPECT_EQ(out.dtype(), DType::f32);
  const Tensor forward = model.forward(in);
  EXPECT_EQ(forward.to_vector_f32(), out.to_vector_f32());
}

TEST_F(WanTransformerTest, DeterministicBySeed) {
  const DenoiseInputs in = inputs({1, 16, 2, 4, 4});
  WanTransformer a(config_, WeightLoader(*source_, *cpu_, DType::f32));
  const auto same_seed =
      random_weights(strong_parameters(wan_parameters(config_, WanLayout::original)), 11);
  WanTransformer b(config_, WeightLoader(*same_seed, *cpu_, DType::f32));
  const auto other_seed =
      random_weights(strong_parameters(wan_parameters(config_, WanLayout::original)), 12);
  WanTransformer c(config_, WeightLoader(*other_seed, *cpu_, DType::f32));
  const std::vector<float> out = a.forward(in).to_vector_f32();
  EXPECT_EQ(a.forward(in).to_vector_f32(), out);  // and across calls (cached RoPE table)
  EXPECT_EQ(b.forward(in).to_vector_f32(), out);
  EXPECT_GT(testing::relative_error(c.forward(in).to_vector_f32(), out), 0.1);
}

TEST_F(WanTransformerTest, BothLayoutsLoadTheSameWeightsToTheSameFunction) {
  const testing::RenamedSource diffusers(*source_, wan_parameters(config_, WanLayout::diffusers),
                                         wan_parameters(config_, WanLayout::original));
  WanTransformer original(config_, WeightLoader(*source_, *cpu_, DType::f32));
  WanTransformer other(config_, WeightLoader(diffusers, *cpu_, DType::f32));
  EXPECT_EQ(other.layout(), WanLayout::diffusers);
  const DenoiseInputs in = inputs({2, 16, 2, 2, 4});
  EXPECT_EQ(other.forward(in).to_vector_f32(), original.forward(in).to_vector_f32());
}

// Wan pads the captions with zero rows to text_len and attends to all of them: padding
// content past caption_lengths does not matter, explicit zero padding changes nothing,
// and the length does matter.
TEST_F(WanTransformerTest, CaptionsPastTheirLengthAreZeroPadding) {
  WanTransformer model(config_, WeightLoader(*source_, *cpu_, DType::f32));
  const DenoiseInputs in = inputs({2, 16, 1, 2, 2});
  const std::vector<float> want = model.forward(in).to_vector_f32();

  DenoiseInputs noisy = in;
  noisy.captions = testing::random_tensor({2, 5, config_.text_dim}, 2);
  copy_into(*cpu_, noisy.captions.select(0, 1).narrow(0, 3, 2),
            testing::random_tensor({2, config_.text_dim}, 9, 5.0f, 6.0f));
  EXPECT_EQ(model.forward(noisy).to_vector_f32(), want);

  DenoiseInputs padded = in;
  padded.captions = Tensor::from_vector(
      std::vector<float>(static_cast<std::size_t>(2 * config_.text_len * config_.text_dim), 0.0f),
      {2, config_.text_len, config_.text_dim});
  copy_into(*cpu_, padded.captions.narrow(1, 0, 5), in.captions);
  EXPECT_LE(testing::relative_error(model.forward(padded).to_vector_f32(), want), 1e-6);

  DenoiseInputs shorter = in;
  shorter.caption_lengths = caption_lengths({5, 2});
  EXPECT_GT(testing::relative_error(model.forward(shorter).to_vector_f32(), want), 1e-4);
}

TEST_F(WanTransformerTest, OtherSizeCheckpointNamesTheTensorAndShapes) {
  // Generated lazily: only the tensors loaded before the failure are made.
  const auto large = random_weights(wan_parameters(wan_t2v_14b(), WanLayout::original), 1);
  try {
    WanTransformer model(wan_t2v_1_3b(), WeightLoader(*large, *cpu_, DType::f32));
    FAIL() << "a 14B checkpoint loaded as 1.3B";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(),
                AllOf(HasSubstr("patch_embedding.weight"), HasSubstr("[5120, 16, 1, 2, 2]"),
                      HasSubstr("[1536, 16, 1, 2, 2]"), HasSubstr("dim 1536")));
  }
  const auto diffusers_small =
      random_weights(wan_parameters(wan_t2v_1_3b(), WanLayout::diffusers), 1);
  EXPECT_THROW(WanTransformer(wan_t2v_14b(), WeightLoader(*diffusers_small, *cpu_, DType::f32)),
               InvalidArgument);
  const auto not_wan = random_weights({{"x.weight", {2, 2}}}, 1);
  try {
    WanTransformer model(config_, WeightLoader(*not_wan, *cpu_, DType::f32));
    FAIL() << "loaded a checkpoint without Wan tensors";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("proj_out.weight"), HasSubstr("head.head.weight")));
  }
}

TEST_F(WanTransformerTest, BadInputsNameTheField) {
  WanTransformer model(config_, WeightLoader(*source_, *cpu_, DType::f32));
  const auto message = [&](const DenoiseInputs& in) -> std::string {
    try {
      model.forward(in);
    } catch (const InvalidArgument& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_THAT(message(inputs({1, 16, 1, 3, 4})), HasSubstr("H (latent rows) = 3"));
  EXPECT_THAT(message(inputs({1, 16, 1, 2, 5})), HasSubstr("W (latent columns) = 5"));
  EXPECT_THAT(message(inputs({1, 8, 1, 2, 2})), HasSubstr("latents"));
  DenoiseInputs long_caption = inputs({1, 16, 1, 2, 2});
  long_caption.captions = testing::random_tensor({1, config_.text_len + 1, config_.text_dim}, 3);
  EXPECT_THAT(message(long_caption), HasSubstr("text_len"));
  DenoiseInputs bad_length = inputs({1, 16, 1, 2, 2});
  bad_length.caption_lengths = caption_lengths({6});
  EXPECT_THAT(message(bad_length), HasSubstr("caption_lengths"));
  DenoiseInputs bad_t = inputs({1, 16, 1, 2, 2});
  bad_t.timesteps = Tensor::from_vector({1.0f, 2.0f}, {2});
  EXPECT_THAT(message(bad_t), HasSubstr("timesteps"));
}

}  // namespace
}  // namespace ditserve
