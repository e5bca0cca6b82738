#include "models/registry.h"

#include <gtest/gtest.h>

#include <numeric>

#include "tensor/error.h"

namespace ditserve {
namespace {

std::int64_t count(const std::vector<ParamSpec>& specs) {
  std::int64_t n = 0;
  for (const ParamSpec& p : specs) n += shape_numel(p.shape);
  return n;
}

TEST(Registry, KnowsBothModelsAndListsThemOnError) {
  EXPECT_EQ(model_names(), (std::vector<std::string>{"opensora-v1.2", "tiny", "wan2.1-t2v-1.3b",
                                                     "wan2.1-t2v-14b", "tiny-wan"}));
  EXPECT_EQ(find_model("tiny").name, "tiny");
  try {
    find_model("opensora");
    FAIL() << "unknown model accepted";
  } catch (const InvalidArgument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model"), std::string::npos) << msg;
    EXPECT_NE(msg.find("opensora-v1.2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("tiny"), std::string::npos) << msg;
  }
}

TEST(Registry, FullSizeModelHasPublishedSizes) {
  const ModelSpec spec = find_model("opensora-v1.2");
  EXPECT_FALSE(spec.builtin_seed.has_value());
  EXPECT_EQ(spec.size_multiple(), 16);
  EXPECT_EQ(spec.max_prompt_tokens(), 300);
  const std::vector<ComponentWeights> parts = model_components(spec);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].dir, "text_encoder");
  EXPECT_EQ(parts[1].dir, "transformer");
  EXPECT_EQ(parts[2].dir, "vae");
  EXPECT_EQ(count(parts[0].params), 4'762'310'656);  // T5 v1.1 XXL encoder
  // STDiT3-XL/2 (notes §1) plus the 300 x 4096 y_embedding buffer.
  EXPECT_EQ(count(parts[1].params), 1'207'643'972 + 300 * 4096);
}

TEST(Registry, TinyComponentsFitTogether) {
  const ModelSpec spec = find_model("tiny");
  ASSERT_TRUE(spec.builtin_seed.has_value());
  EXPECT_EQ(spec.transformer.caption_channels, spec.text_encoder.d_model);
  EXPECT_EQ(spec.transformer.in_channels, spec.vae.temporal.channels);
  EXPECT_EQ(spec.size_multiple(), 16);
  const auto be = make_backend(Device::cpu());
  const LoadedModel model = load_model(spec, *be, std::nullopt);
  EXPECT_EQ(model.text_encoder->hidden_size(), spec.transformer.caption_channels);
  EXPECT_EQ(model.transformer->latent_channels(), model.vae->latent_channels());
  EXPECT_EQ(model.null_caption.shape(),
            (Shape{1, spec.max_prompt_tokens(), spec.transformer.caption_channels}));
  // The null caption is the DiT checkpoint's y_embedding.
  const auto source = random_weights(model_components(spec)[1].params, *spec.builtin_seed);
  const Tensor y = source->get("y_embedder.y_embedding",
                               {spec.transformer.model_max_length, spec.transformer.caption_channels});
  EXPECT_EQ(model.null_caption.to_vector_f32(), y.to_vector_f32());
}

TEST(Registry, FullSizeModelNeedsAWeightsDirectory) {
  const auto be = make_backend(Device::cpu());
  try {
    load_model(find_model("opensora-v1.2"), *be, std::nullopt);
    FAIL() << "loaded without weights";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("weights"), std::string::npos) << e.what();
  }
}

TEST(Registry, DtypesFollowOpenSora) {
  const ModelDTypes cpu = default_dtypes(Device::cpu());
  EXPECT_EQ(cpu.transformer, DType::f32);
  const ModelDTypes gpu = default_dtypes(Device::cuda(0));
  EXPECT_EQ(gpu.text_encoder, DType::f32);
  EXPECT_EQ(gpu.transformer, DType::bf16);
  EXPECT_EQ(gpu.vae, DType::bf16);
}

TEST(Registry, WanModelsHaveWansSizesAndDefaults) {
  for (const char* name : {"wan2.1-t2v-1.3b", "wan2.1-t2v-14b"}) {
    const ModelSpec spec = find_model(name);
    EXPECT_TRUE(spec.is_wan()) << name;
    EXPECT_FALSE(spec.builtin_seed.has_value());
    EXPECT_EQ(spec.size_multiple(), 16);  // VAE 8 x patch 2
    EXPECT_EQ(spec.max_prompt_tokens(), 512);
    EXPECT_EQ(spec.latent_frames(81), 21);
    EXPECT_EQ(spec.latent_channels(), 16);
    EXPECT_EQ(spec.text_encoder.vocab, 256384);  // UMT5-XXL
    EXPECT_EQ(spec.wan_sampling.steps, 50);
    EXPECT_EQ(spec.wan_sampling.frames, 81);
    EXPECT_EQ(spec.wan_sampling.fps, 16.0f);
    EXPECT_TRUE(spec.wan_sampling.negative_prompt.starts_with("色调艳丽"));
    const ModelDTypes gpu = default_dtypes(spec, Device::cuda(0));
    EXPECT_EQ(gpu.text_encoder, DType::bf16);
    EXPECT_EQ(gpu.transformer, DType::bf16);
    EXPECT_EQ(gpu.vae, DType::f32);
    EXPECT_EQ(default_dtypes(spec, Device::cpu()).transformer, DType::f32);
    // Both namings list the same tensors in the same order.
    const auto original = model_components(spec, WeightLayout::original);
    const auto diffusers = model_components(spec, WeightLayout::diffusers);
    ASSERT_EQ(original.size(), 3u);
    for (std::size_t c = 0; c < 3; ++c) {
      EXPECT_EQ(original[c].dir, diffusers[c].dir);
      EXPECT_EQ(count(original[c].params), count(diffusers[c].params)) << original[c].dir;
    }
  }
  EXPECT_EQ(find_model("wan2.1-t2v-1.3b").wan_sampling.guidance, 6.0f);
  EXPECT_EQ(find_model("wan2.1-t2v-1.3b").wan_sampling.shift, 8.0);
  EXPECT_EQ(find_model("wan2.1-t2v-14b").wan_sampling.guidance, 5.0f);
  EXPECT_EQ(find_model("wan2.1-t2v-14b").wan_sampling.shift, 5.0);
  EXPECT_EQ(find_model("wan2.1-t2v-14b").wan_sampling.width, 1280);
  try {
    model_components(find_model("tiny"), WeightLayout::diffusers);
    FAIL() << "Open-Sora in diffusers' naming";
  } catch (const InvalidArgument& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("layout:")) << e.what();
  }
  EXPECT_EQ(parse_weight_layout("diffusers"), WeightLayout::diffusers);
  EXPECT_THROW(parse_weight_layout("hf"), InvalidArgument);
}

TEST(Registry, TinyWanComponentsFitTogether) {
  const ModelSpec spec = find_model("tiny-wan");
  ASSERT_TRUE(spec.builtin_seed.has_value());
  const auto be = make_backend(Device::cpu());
  const LoadedModel model = load_model(spec, *be, std::nullopt);
  EXPECT_EQ(model.text_encoder->hidden_size(), spec.wan_transformer.text_dim);
  EXPECT_EQ(model.text_encoder->max_tokens(), spec.max_prompt_tokens());
  EXPECT_EQ(model.transformer->latent_channels(), model.vae->latent_channels());
  EXPECT_EQ(model.vae->spatial_factor(), 8);
  EXPECT_EQ(model.vae->latent_frames(9), 3);
  EXPECT_FALSE(model.null_caption.defined());  // Wan encodes a negative prompt instead
}

}  // namespace
}  // namespace ditserve
