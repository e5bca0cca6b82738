#pragma once
// Open-Sora 1.2's rectified-flow sampler (opensora/schedulers/rf): N Euler steps from
// t = 1000 (noise) towards 0 along the predicted velocity v = x0 - noise, with the
// resolution/length timestep shift and classifier-free guidance. See
// shared/models/opensora-1.2.md §3.

#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/backend.h"
#include "models/interfaces.h"
#include "pipeline/flow_matching.h"

namespace ditserve {


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
  // The update after each guided DiT call; Open-Sora's rectified flow unless a model's
  // defaults say otherwise (Wan: unipc, pipeline.h's default_request).
  SamplerKind sampler = SamplerKind::rectified_flow;
  double shift = 5.0;  // flow_sigmas' shift, for the unipc and euler samplers only
};

// One request's denoising state, advanced one step at a time. A plain movable value
// holding device tensors: the runtime may move it to another device between steps.
// REQUIRES: latents, captions and caption_lengths live on the device of the Backend
// passed to step(); captions is [2, L, C] (the prompt's embedding, then the null
// caption), caption_lengths i32 [2] (both the prompt's length, as Open-Sora repeats the
// prompt's mask over the CFG batch; for Wan the prompt's and the negative prompt's).
class GenerationState {
 public:
  // `start_step` > 0 resumes a run: latents are those after its first start_step steps.
  // The unipc sampler also needs its multistep history to continue exactly
  // (restore_solver_history); without it it warms up again (see FlowUniPC).
  // Throws InvalidArgument naming "step" when start_step > options.steps.
  GenerationState(Tensor latents, Tensor captions, Tensor caption_lengths,
                  const SamplerOptions& options, std::size_t start_step = 0);

  bool done() const { return step_ >= timesteps_.size(); }
  std::size_t step_index() const { return step_; }
  std::size_t num_steps() const { return timesteps_.size(); }
  const std::vector<float>& timesteps() const { return timesteps_; }
  const SamplerOptions& options() const { return options_; }

  // z <- the sampler's update with the guided velocity, one DiT call on the batch [z, z].
  // REQUIRES: !done(); dit lives on be's device.
  void step(Backend& be, DiffusionTransformer& dit);
  // step() in two halves, so that a group of devices can run the DiT call in between:
  // the DiT's inputs for the next step (on be's device), then the update from the DiT's
  // prediction for them (on be's device). step() is advance(be, dit.forward(next_inputs(be))).
  DenoiseInputs next_inputs(Backend& be) const;
  void advance(Backend& be, const Tensor& prediction);

  // Copies every tensor of the state (the unipc history included) from `from`'s device
  // onto `to`'s.
  void move_to(Backend& from, Backend& to);

  // The unipc sampler's history (nullopt for the other samplers, which have none), its
  // tensors shared with the state.
  std::optional<FlowUniPC::History> solver_history() const;
  // Gives a resumed state the history solver_history() returned for the run it resumes,
  // at the same step, its tensors on the state's device. Throws InvalidArgument naming
  // "history" when the sampler is not unipc or the history does not fit the step.
  void restore_solver_history(FlowUniPC::History history);

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
  std::vector<double> sigmas_;       // unipc and euler: flow_sigmas()
  std::optional<FlowUniPC> unipc_;   // unipc: the solver's history
};

}  // namespace ditserve
