// The CUDA backend against the CPU backend on the whole tiny model. Runs only where a GPU
// is present (bench/gpu_models.sh runs it on the lent GPU machine); elsewhere it skips.

#include <gtest/gtest.h>

#include "kernels/copy.h"
#include "models/opensora_vae.h"
#include "models/registry.h"
#include "pipeline/pipeline.h"
#include "support/random.h"

namespace ditserve {
namespace {

GenerateRequest request() {
  GenerateRequest r;
  r.prompt = "a paper boat floats down a small stream at dawn";
  r.frames = 16;
  r.height = 64;
  r.width = 64;
  r.steps = 10;
  r.seed = 7;
  return r;
}

// Host latents after `steps` denoising steps with the backend's default dtypes.
Tensor latents_after(Backend& be, int steps, PipelineOptions options = {}) {
  Pipeline pipeline(find_model("tiny"), be, std::nullopt, options);
  GenerationState state = pipeline.start(request(), pipeline.encode(request().prompt));
  for (int i = 0; i < steps; ++i) state.step(be, pipeline.transformer());
  auto host = make_backend(Device::cpu());
  return transfer(be, state.latents(), *host);
}

// The tiny VAE's decode of host `latents` on `be`, computing in `dtype`, back on the host.
Tensor decode_on(Backend& be, DType dtype, const Tensor& latents) {
  const ModelSpec spec = find_model("tiny");
  const auto source = random_weights(model_components(spec)[2].params, *spec.builtin_seed);
  OpenSoraVAE vae(spec.vae, *source, be, dtype);
  auto host = make_backend(Device::cpu());
  return transfer(be, vae.decode(transfer(*host, latents, be), request().frames), *host);
}

TEST(CudaPipeline, TinyLatentsAfterThreeStepsMatchTheCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  auto cpu = make_backend(Device::cpu());
  auto gpu = make_backend(Device::cuda(0));
  const Tensor cpu_latents = latents_after(*cpu, 3);
  const double latent_error = testing::relative_error(latents_after(*gpu, 3), cpu_latents);
  // The same latents decoded by the VAE on both backends: f32 on CUDA is the same
  // arithmetic as the CPU; bf16 (the CUDA default) is reported, since a random-weight VAE
  // amplifies rounding through its GroupNorms.
  const Tensor cpu_video = decode_on(*cpu, DType::f32, cpu_latents);
  const double video_f32_error =
      testing::relative_error(decode_on(*gpu, DType::f32, cpu_latents), cpu_video);
  const double video_bf16_error =
      testing::relative_error(decode_on(*gpu, DType::bf16, cpu_latents), cpu_video);
  std::printf("tiny, 3 steps: latents rel. error %.3e (DiT bf16 on CUDA); decoded video rel. "
              "error %.3e (VAE f32 on CUDA), %.3e (VAE bf16 on CUDA)\n",
              latent_error, video_f32_error, video_bf16_error);
  EXPECT_LE(latent_error, 2e-2);
  EXPECT_LE(video_f32_error, 1e-4);
}

// With CUDA graphs the steps after the second replay a captured graph: the latents equal
// the eager launches' bit for bit (the same kernels on the same inputs).
TEST(CudaPipeline, GraphedStepsGiveTheEagerLatents) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  auto gpu = make_backend(Device::cuda(0));
  const Tensor eager = latents_after(*gpu, 5);
  const Tensor graphed = latents_after(*gpu, 5, PipelineOptions{true});
  EXPECT_EQ(testing::relative_error(graphed, eager), 0.0);
}

}  // namespace
}  // namespace ditserve
