// The CUDA backend against the CPU backend on the whole tiny model. Runs only where a GPU
// is present (bench/gpu_models.sh runs it on the lent GPU machine); elsewhere it skips.

#include <gtest/gtest.h>

#include "kernels/copy.h"
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

// Latents after `steps` denoising steps, and the decoded video of them, on the host.
std::pair<Tensor, Tensor> run(Backend& be, int steps) {
  Pipeline pipeline(find_model("tiny"), be, std::nullopt);
  GenerationState state = pipeline.start(request(), pipeline.encode(request().prompt));
  for (int i = 0; i < steps; ++i) state.step(be, pipeline.transformer());
  auto host = make_backend(Device::cpu());
  const Tensor latents = transfer(be, state.latents(), *host);
  return {latents, pipeline.vae().decode(state.latents(), request().frames)};
}

TEST(CudaPipeline, TinyLatentsAfterThreeStepsMatchTheCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  auto cpu = make_backend(Device::cpu());
  auto gpu = make_backend(Device::cuda(0));
  const auto [cpu_latents, cpu_video] = run(*cpu, 3);
  const auto [gpu_latents, gpu_video_on_gpu] = run(*gpu, 3);
  const double latent_error = testing::relative_error(gpu_latents, cpu_latents);
  const Tensor gpu_video = transfer(*gpu, gpu_video_on_gpu, *cpu);
  const double video_error = testing::relative_error(gpu_video, cpu_video);
  std::printf("tiny, 3 steps: latents rel. error %.3e, decoded video rel. error %.3e\n",
              latent_error, video_error);
  // The DiT and VAE run in bf16 on CUDA (f32 on the CPU).
  EXPECT_LE(latent_error, 2e-2);
  EXPECT_LE(video_error, 5e-2);
}

}  // namespace
}  // namespace ditserve
