#include "pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
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

TEST(ValidateRequest, WanFramesSizeSamplerAndShift) {
  const ModelSpec spec = find_model("tiny-wan");
  GenerateRequest ok = default_request(spec);
  ok.prompt = "a paper boat";
  EXPECT_EQ(ok.sampler, SamplerKind::unipc);
  EXPECT_EQ(ok.frames, 5);
  EXPECT_EQ(rejection(spec, ok), "");
  const auto with = [&](auto change) {
    GenerateRequest r = ok;
    change(r);
    return rejection(spec, r);
  };
  EXPECT_TRUE(with([](auto& r) { r.frames = 8; }).starts_with("frames:"));
  EXPECT_NE(with([](auto& r) { r.frames = 8; }).find("4k+1"), std::string::npos);
  EXPECT_EQ(with([](auto& r) { r.frames = 1; }), "");
  EXPECT_EQ(with([](auto& r) { r.frames = 13; }), "");
  EXPECT_TRUE(with([](auto& r) { r.width = 56; }).starts_with("size:"));
  EXPECT_TRUE(
      with([](auto& r) { r.sampler = SamplerKind::rectified_flow; }).starts_with("sampler:"));
  EXPECT_EQ(with([](auto& r) { r.sampler = SamplerKind::euler; }), "");
  EXPECT_TRUE(with([](auto& r) { r.shift = -1.0; }).starts_with("shift:"));
  const GenerateRequest full = default_request(find_model("wan2.1-t2v-1.3b"));
  EXPECT_EQ(full.frames, 81);
  EXPECT_EQ(full.width, 832);
  EXPECT_EQ(full.height, 480);
  EXPECT_EQ(full.steps, 50);
  EXPECT_EQ(full.guidance, 6.0f);
  EXPECT_EQ(full.shift, 8.0);
  EXPECT_EQ(full.fps, 16.0f);
}

class TinyWanPipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    backend_ = make_backend(Device::cpu());
    pipeline_ = std::make_unique<Pipeline>(find_model("tiny-wan"), *backend_, std::nullopt);
  }
  static void TearDownTestSuite() {
    pipeline_.reset();
    backend_.reset();
  }
  static inline std::unique_ptr<Backend> backend_;
  static inline std::unique_ptr<Pipeline> pipeline_;
};

TEST_F(TinyWanPipeline, EncodesPromptAndNegativePromptEachWithItsLength) {
  Pipeline& p = *pipeline_;
  const std::string prompt = "a panda eats bamboo", negative = "blurry";
  const auto lp = static_cast<std::int64_t>(p.tokenizer().encode(prompt).size());
  const auto ln = static_cast<std::int64_t>(p.tokenizer().encode(negative).size());
  ASSERT_NE(lp, ln);
  const Captions c = p.encode(prompt, negative);
  const std::int64_t l = std::max(lp, ln), d = p.spec().text_encoder.d_model;
  ASSERT_EQ(c.embeddings.shape(), (Shape{2, l, d}));
  EXPECT_EQ(c.lengths.to_vector_f32(), (std::vector<float>{float(lp), float(ln)}));
  // The shorter row is zero past its length.
  const std::int64_t short_row = lp < ln ? 0 : 1, short_len = std::min(lp, ln);
  const Tensor tail = c.embeddings.select(0, short_row).narrow(0, short_len, l - short_len);
  for (const float v : tail.to_vector_f32()) ASSERT_EQ(v, 0.0f);
  // Each row is that text's own encoding.
  const Captions alone = p.encode(negative, negative);
  EXPECT_EQ(c.embeddings.select(0, 1).narrow(0, 0, ln).to_vector_f32(),
            alone.embeddings.select(0, 0).to_vector_f32());
  // The default negative prompt is Wan's, embedded once and reused.
  const std::string& wan_negative = p.spec().wan_sampling.negative_prompt;
  const Captions d1 = p.encode(prompt), d2 = p.encode(prompt, "");
  const Captions explicit_default = p.encode(prompt, wan_negative);
  EXPECT_EQ(d1.lengths.to_vector_f32()[1],
            float(p.tokenizer().encode(wan_negative).size()));
  EXPECT_EQ(d1.embeddings.to_vector_f32(), d2.embeddings.to_vector_f32());
  EXPECT_EQ(d1.embeddings.to_vector_f32(), explicit_default.embeddings.to_vector_f32());
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += "a horse gallops ";
  try {
    p.encode(prompt, long_text);
    FAIL() << "over-long negative prompt accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("negative_prompt:")) << e.what();
  }
}

TEST_F(TinyWanPipeline, DeterministicBySeedThroughDecode) {
  Pipeline& p = *pipeline_;
  GenerateRequest r = default_request(p.spec());
  r.prompt = "a lighthouse at night";
  r.frames = 5;
  r.width = 32;
  r.height = 48;
  r.steps = 3;
  r.seed = 4;
  const auto run = [&](const GenerateRequest& req) {
    GenerationState s = p.start(req, p.encode(req.prompt));
    EXPECT_EQ(s.latents().shape(), (Shape{1, 16, 2, 6, 4}));
    while (!s.done()) s.step(*backend_, p.transformer());
    return p.decode(s);
  };
  const Tensor a = run(r), b = run(r);
  EXPECT_EQ(a.shape(), (Shape{1, 3, 5, 48, 32}));
  EXPECT_EQ(a.to_vector_f32(), b.to_vector_f32());
  GenerateRequest other = r;
  other.seed = 5;
  EXPECT_NE(run(other).to_vector_f32(), a.to_vector_f32());
}

}  // namespace
}  // namespace ditserve
