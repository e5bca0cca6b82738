#include "pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "tensor/error.h"

namespace ditserve {
namespace {

std::string rejection(const ModelSpec& spec, const GenerateRequest& r) {
  try {
    validate_request(spec, r);
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "";
}

GenerateRequest small_request() {
  GenerateRequest r;
  r.prompt = "a paper boat floats down a small stream";
  r.frames = 5;
  r.height = 32;
  r.width = 48;
  r.steps = 2;
  r.seed = 11;
  return r;
}

TEST(ValidateRequest, NamesTheBadField) {
  const ModelSpec spec = find_model("tiny");
  EXPECT_EQ(rejection(spec, small_request()), "");
  const auto with = [](auto change) {
    GenerateRequest r = small_request();
    change(r);
    return r;
  };
  EXPECT_NE(rejection(spec, with([](auto& r) { r.frames = 0; })).find("frames"), std::string::npos);
  EXPECT_NE(rejection(spec, with([](auto& r) { r.width = 40; })).find("size"), std::string::npos);
  EXPECT_NE(rejection(spec, with([](auto& r) { r.height = -16; })).find("size"), std::string::npos);
  EXPECT_NE(rejection(spec, with([](auto& r) { r.steps = 0; })).find("steps"), std::string::npos);
  EXPECT_NE(rejection(spec, with([](auto& r) { r.fps = 0; })).find("fps"), std::string::npos);
  EXPECT_NE(rejection(spec, with([](auto& r) { r.guidance = NAN; })).find("guidance"),
            std::string::npos);
}

class TinyPipeline : public ::testing::Test {
 protected:
  // One model for the whole suite: loading it is the slow part.
  static void SetUpTestSuite() {
    backend_ = make_backend(Device::cpu());
    owned_pipeline_ = std::make_unique<Pipeline>(find_model("tiny"), *backend_, std::nullopt);
    be_ = backend_.get();
    pipeline_ = owned_pipeline_.get();
  }
  static void TearDownTestSuite() {
    owned_pipeline_.reset();
    backend_.reset();
  }
  static inline std::unique_ptr<Backend> backend_;
  static inline std::unique_ptr<Pipeline> owned_pipeline_;
  static inline Backend* be_ = nullptr;
  static inline Pipeline* pipeline_ = nullptr;
};

TEST_F(TinyPipeline, EncodeBatchesPromptWithNullCaption) {
  const std::string prompt = "a panda eats bamboo";
  const auto length = static_cast<std::int64_t>(pipeline_->tokenizer().encode(prompt).size());
  const Captions c = pipeline_->encode(prompt);
  const std::int64_t channels = pipeline_->spec().transformer.caption_channels;
  ASSERT_EQ(c.embeddings.shape(), (Shape{2, length, channels}));
  EXPECT_EQ(c.lengths.to_vector_f32(), (std::vector<float>{float(length), float(length)}));
  // Row 1 is y_embedding's first `length` rows; row 0 is the text encoder's output.
  const auto& spec = pipeline_->spec();
  const auto source = random_weights(model_components(spec)[1].params, *spec.builtin_seed);
  const Tensor y = source->get("y_embedder.y_embedding",
                               {spec.transformer.model_max_length, channels});
  EXPECT_EQ(c.embeddings.select(0, 1).to_vector_f32(), y.narrow(0, 0, length).to_vector_f32());
  EXPECT_NE(c.embeddings.select(0, 0).to_vector_f32(), c.embeddings.select(0, 1).to_vector_f32());
  EXPECT_THROW(pipeline_->encode(""), InvalidArgument);
}

TEST_F(TinyPipeline, StartsFromSeededNoiseAndDecodesToFrames) {
  const GenerateRequest r = small_request();
  GenerationState state = pipeline_->start(r, pipeline_->encode(r.prompt));
  const Shape latent{1, 4, pipeline_->vae().latent_frames(5), 4, 6};
  EXPECT_EQ(state.latents().shape(), latent);
  EXPECT_EQ(state.latents().to_vector_f32(), gaussian_noise(latent, 11).to_vector_f32());
  EXPECT_EQ(state.num_steps(), 2u);
  EXPECT_THROW(pipeline_->decode(state), InvalidArgument);  // not finished
  while (!state.done()) state.step(*be_, pipeline_->transformer());
  EXPECT_NE(state.latents().to_vector_f32(), gaussian_noise(latent, 11).to_vector_f32());
  const Tensor video = pipeline_->decode(state);
  EXPECT_EQ(video.shape(), (Shape{1, 3, 5, 32, 48}));
  EXPECT_TRUE(video.device().is_cpu());
  for (float v : video.to_vector_f32()) ASSERT_TRUE(std::isfinite(v));

  // Same request, same latents.
  GenerationState again = pipeline_->start(r, pipeline_->encode(r.prompt));
  while (!again.done()) again.step(*be_, pipeline_->transformer());
  EXPECT_EQ(again.latents().to_vector_f32(), state.latents().to_vector_f32());
}

}  // namespace
}  // namespace ditserve
