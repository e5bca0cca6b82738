#pragma once
// Wan 2.1's flow-matching sampling: the shifted sigma schedule and the two solvers Wan's
// text2video.py can use here — UniPC multistep (FlowUniPCMultistepScheduler of Wan-Video/
// Wan2.1 wan/utils/fm_solvers_unipc.py: bh2, order 2, predicting x0 from the flow,
// lower-order final step, corrector on every step after the first) and plain Euler.
// The model predicts the flow v = noise - x0 and the sample is x_sigma = (1 - sigma) x0 +
// sigma noise, so dx/dsigma = v and x0 = x - sigma v.

#include <cstdint>
#include <string_view>
#include <vector>

#include "kernels/backend.h"

namespace ditserve {

// Which update GenerationState applies after each (guided) DiT call.
enum class SamplerKind {
  rectified_flow,  // Open-Sora 1.2's Euler steps on its own schedule (rectified_flow.h)
  unipc,           // Wan's default: flow UniPC on flow_sigmas()
  euler,           // Euler on flow_sigmas(): x += (sigma_{i+1} - sigma_i) v
};
const char* sampler_name(SamplerKind kind);  // "rflow", "unipc", "euler"
// Throws InvalidArgument naming "sampler" and the accepted names for any other text.
SamplerKind parse_sampler(std::string_view name);

// Wan's schedule (FlowUniPCMultistepScheduler.set_timesteps with num_train_timesteps
// 1000): steps sigmas linspace(0.999, 0, steps + 1)[:-1], each shifted to
// shift*s / (1 + (shift - 1)*s), then a final 0: steps + 1 values, descending.
// Throws InvalidArgument naming "steps" (< 1) or "shift" (not > 0).
std::vector<double> flow_sigmas(int steps, double shift);
// The `steps` timesteps the DiT sees: trunc(sigma * 1000) of the float64 shifted sigmas
// (Wan casts them to int64). Same errors as flow_sigmas.
std::vector<float> flow_timesteps(int steps, double shift);

// Euler: sample + (sigma_next - sigma) * velocity.
Tensor flow_euler_step(Backend& be, const Tensor& sample, const Tensor& velocity, double sigma,
                       double sigma_next);

// The UniPC solver's state across steps: its last model outputs (x0 predictions) and the
// sample before the last predictor. A movable value of device tensors, like
// GenerationState. Not thread-safe.
class FlowUniPC {
 public:
  // What the solver carries from one step to the next besides its step index: enough to
  // continue a run exactly where it stopped (the runtime's state file saves it).
  struct History {
    int lower_order_nums = 0;
    int this_order = 1;
    Tensor last_sample;      // undefined before the first step
    std::vector<Tensor> x0;  // oldest first, at most `order`
  };

  // `sigmas` as flow_sigmas() returns. REQUIRES: order 1 or 2. start_step > 0 without a
  // history resumes a run from its latents alone: the next step warms up at order 1 and
  // skips the corrector (results then differ slightly from an uninterrupted run); with the
  // history() of the run at start_step it continues exactly as the run would.
  // Throws InvalidArgument naming "step" when start_step is past the schedule, and
  // "history" for a history that does not fit start_step and the order.
  explicit FlowUniPC(std::vector<double> sigmas, int order = 2, std::size_t start_step = 0);
  FlowUniPC(std::vector<double> sigmas, int order, std::size_t start_step, History history);

  // One step at sigmas[step_index()]: corrects `sample` with the new prediction (after the
  // first step), then predicts the sample at the next sigma. Returns it.
  Tensor step(Backend& be, const Tensor& velocity, const Tensor& sample);
  std::size_t step_index() const { return index_; }
  bool done() const { return index_ + 1 >= sigmas_.size(); }

  // Copies the state's tensors from `from`'s device onto `to`'s.
  void move_to(Backend& from, Backend& to);
  // The history after step_index() steps (its tensors shared, not copied).
  History history() const { return {lower_order_nums_, this_order_, last_sample_, x0_}; }

 private:
  Tensor predict(Backend& be, const Tensor& sample, int order) const;
  Tensor correct(Backend& be, const Tensor& x0, const Tensor& sample) const;

  std::vector<double> sigmas_;
  int order_;
  std::size_t index_ = 0;
  int lower_order_nums_ = 0;
  int this_order_ = 1;      // the order of the last predictor (the next corrector's)
  Tensor last_sample_;      // the sample the last predictor started from
  std::vector<Tensor> x0_;  // x0 predictions, oldest first, at most order_
};

}  // namespace ditserve
