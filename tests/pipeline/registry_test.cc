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
  EXPECT_EQ(model_names(), (std::vector<std::string>{"opensora-v1.2", "tiny"}));
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

}  // namespace
}  // namespace ditserve
