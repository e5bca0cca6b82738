#pragma once
// Open-Sora 1.2's rectified-flow sampler (opensora/schedulers/rf): N Euler steps from
// t = 1000 (noise) towards 0 along the predicted velocity v = x0 - noise, with the
// resolution/length timestep shift and classifier-free guidance. See
// shared/models/opensora-1.2.md §3.

#include <cstdint>
#include <vector>

#include "kernels/backend.h"

namespace ditserve {

class DiffusionTransformer;

// The shift ratio r = sqrt(H*W / 512^2) * sqrt(n), n = frames // 17 * 5 (1 for an image),
// rounded to bf16 after each operation because Open-Sora computes it on bf16 tensors:
// 720x1280x51 -> 7.25, 144x256x51 -> 1.453125. Departure from Open-Sora: n is at least
// 1, where Open-Sora's n = 0 for 2..16 frames would shift every timestep to 0.
float rflow_shift_ratio(std::int64_t height, std::int64_t width, std::int64_t frames);

// The `steps` timesteps in (0, 1000], descending: t_i = (1 - i/steps) * 1000 mapped by
// t' = r*t / (1 + (r-1)*t) on t in [0, 1] (f32, with r-1 in bf16 as in Open-Sora).
// Throws InvalidArgument naming "steps" unless steps >= 1.
std::vector<float> rflow_timesteps(int steps, float shift_ratio);

// The Euler step size of step i: (t_i - t_{i+1}) / 1000, and t_{N-1} / 1000 for the last.
float rflow_dt(const std::vector<float>& timesteps, std::size_t i);

// Standard-normal f32 host noise from `seed`: std::mt19937_64 (fully specified by the
// C++ standard), 53-bit uniforms, Box-Muller pairs written in order. Same seed, same
// values on every platform (std::normal_distribution would not promise that).
Tensor gaussian_noise(const Shape& shape, std::uint64_t seed);

// Classifier-free guidance: uncond + scale * (cond - uncond).
Tensor apply_guidance(Backend& be, const Tensor& cond, const Tensor& uncond, float scale);

// What the sampler needs besides the latents and captions.
struct SamplerOptions {
  int steps = 30;
  float guidance = 7.0f;  // Open-Sora's sample.py (the class default is 4.0)
  float fps = 24.0f;
  std::int64_t height = 0;  // pixels of the video, for the shift and the DiT's conditioning
  std::int64_t width = 0;
  std::int64_t frames = 0;
};

// One request's denoising state, advanced one step at a time. A plain movable value
// holding device tensors: the runtime may move it to another device between steps.
// REQUIRES: latents, captions and caption_lengths live on the device of the Backend
// passed to step(); captions is [2, L, C] (the prompt's embedding, then the null
// caption), caption_lengths i32 [2] (both the prompt's length, as Open-Sora repeats the
// prompt's mask over the CFG batch).
class GenerationState {
 public:
  GenerationState(Tensor latents, Tensor captions, Tensor caption_lengths,
                  const SamplerOptions& options);

  bool done() const { return step_ >= timesteps_.size(); }
  std::size_t step_index() const { return step_; }
  std::size_t num_steps() const { return timesteps_.size(); }
  const std::vector<float>& timesteps() const { return timesteps_; }
  const SamplerOptions& options() const { return options_; }

  // z <- z + dt_i * guided velocity, one DiT call on the batch [z, z].
  // REQUIRES: !done(); dit lives on be's device.
  void step(Backend& be, DiffusionTransformer& dit);

  // Copies every tensor of the state from `from`'s device onto `to`'s.
  void move_to(Backend& from, Backend& to);

  const Tensor& latents() const { return latents_; }  // f32 [1, C, T, h, w]
  const Tensor& captions() const { return captions_; }
  const Tensor& caption_lengths() const { return caption_lengths_; }

 private:
  Tensor latents_;
  Tensor captions_;
  Tensor caption_lengths_;
  SamplerOptions options_;
  std::vector<float> timesteps_;
  std::size_t step_ = 0;
};

}  // namespace ditserve
