#include "pipeline/rectified_flow.h"

#include <cmath>
#include <numbers>
#include <random>
#include <utility>

#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "models/interfaces.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

Tensor upload(Backend& be, const Tensor& host) {
  const std::unique_ptr<Backend> host_be = make_backend(host.device());
  return transfer(*host_be, host, be);
}

}  // namespace

float rflow_shift_ratio(std::int64_t height, std::int64_t width, std::int64_t frames) {
  const float h = bf16_round(static_cast<float>(height));
  const float w = bf16_round(static_cast<float>(width));
  const float resolution = bf16_round(h * w);
  const float ratio_space = bf16_round(std::sqrt(bf16_round(resolution / (512.0f * 512.0f))));
  float n = 1.0f;
  if (frames != 1) {
    const float f = bf16_round(static_cast<float>(frames));
    n = std::max(1.0f, bf16_round(std::floor(f / 17.0f) * 5.0f));
  }
  const float ratio_time = bf16_round(std::sqrt(n));
  return bf16_round(ratio_space * ratio_time);
}

std::vector<float> rflow_timesteps(int steps, float shift_ratio) {
  DITSERVE_CHECK(steps >= 1, "steps: must be >= 1, got ", steps);
  DITSERVE_CHECK(shift_ratio > 0.0f, "rflow_timesteps: shift ratio must be > 0, got ", shift_ratio);
  const float r_minus_1 = bf16_round(shift_ratio - 1.0f);
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    const auto t_1000 = static_cast<float>((1.0 - static_cast<double>(i) / steps) * 1000.0);
    const float t = t_1000 / 1000.0f;
    const float shifted = shift_ratio * t / (1.0f + r_minus_1 * t);
    out.push_back(shifted * 1000.0f);
  }
  return out;
}

float rflow_dt(const std::vector<float>& timesteps, std::size_t i) {
  DITSERVE_CHECK(i < timesteps.size(), "rflow_dt: step ", i, " of ", timesteps.size());
  const float next = i + 1 < timesteps.size() ? timesteps[i + 1] : 0.0f;
  return (timesteps[i] - next) / 1000.0f;
}

Tensor gaussian_noise(const Shape& shape, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  const auto uniform = [&gen] { return static_cast<double>(gen() >> 11) * 0x1.0p-53; };
  Tensor out = Tensor::empty_host(shape, DType::f32);
  float* data = out.data<float>();
  const std::int64_t n = out.numel();
  for (std::int64_t i = 0; i < n; i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(1.0 - uniform()));  // 1-u in (0, 1]
    const double angle = 2.0 * std::numbers::pi * uniform();
    data[i] = static_cast<float>(radius * std::cos(angle));
    if (i + 1 < n) data[i + 1] = static_cast<float>(radius * std::sin(angle));
  }
  return out;
}

namespace {

std::vector<float> sampler_timesteps(const SamplerOptions& o) {
  if (o.sampler == SamplerKind::rectified_flow)
    return rflow_timesteps(o.steps, rflow_shift_ratio(o.height, o.width, o.frames));
  return flow_timesteps(o.steps, o.shift);
}

}  // namespace

Tensor apply_guidance(Backend& be, const Tensor& cond, const Tensor& uncond, float scale) {
  return add_scaled(be, uncond, add_scaled(be, cond, uncond, -1.0f), scale);
}

GenerationState::GenerationState(Tensor latents, Tensor captions, Tensor caption_lengths,
                                 const SamplerOptions& options, std::size_t start_step)
    : latents_(std::move(latents)),
      captions_(std::move(captions)),
      caption_lengths_(std::move(caption_lengths)),
      options_(options),
      timesteps_(sampler_timesteps(options)),
      step_(start_step) {
  DITSERVE_CHECK(start_step <= timesteps_.size(), "step: a state of ", timesteps_.size(),
                 " steps cannot resume at step ", start_step);
  if (options.sampler != SamplerKind::rectified_flow)
    sigmas_ = flow_sigmas(options.steps, options.shift);
  if (options.sampler == SamplerKind::unipc) unipc_.emplace(sigmas_, 2, start_step);
  DITSERVE_CHECK(latents_.dim() == 5 && latents_.size(0) == 1 && latents_.dtype() == DType::f32,
                 "GenerationState: latents must be f32 [1, C, T, h, w], got ", latents_.describe());
  DITSERVE_CHECK(captions_.dim() == 3 && captions_.size(0) == 2,
                 "GenerationState: captions must be [2, L, C] (prompt, null), got ",
                 captions_.describe());
  DITSERVE_CHECK(caption_lengths_.dim() == 1 && caption_lengths_.size(0) == 2 &&
                     caption_lengths_.dtype() == DType::i32,
                 "GenerationState: caption_lengths must be i32 [2], got ",
                 caption_lengths_.describe());
}

void GenerationState::step(Backend& be, DiffusionTransformer& dit) {
  advance(be, dit.forward(next_inputs(be)));
}

DenoiseInputs GenerationState::next_inputs(Backend& be) const {
  DITSERVE_CHECK(!done(), "GenerationState::step: all ", timesteps_.size(), " steps are done");
  const float t = timesteps_[step_];
  DenoiseInputs in;
  in.latents = concat(be, {latents_, latents_}, 0);
  in.timesteps = upload(be, Tensor::from_vector({t, t}, {2}));
  in.captions = captions_;
  in.caption_lengths = caption_lengths_;
  in.fps = options_.fps;
  in.height = options_.height;
  in.width = options_.width;
  return in;
}

void GenerationState::advance(Backend& be, const Tensor& out) {
  DITSERVE_CHECK(!done(), "GenerationState::step: all ", timesteps_.size(), " steps are done");
  // Only the velocity channels are kept (STDiT3's pred_sigma channels are not used).
  const std::int64_t channels = latents_.size(1);
  DITSERVE_CHECK(out.dim() == 5 && out.size(0) == 2 && out.size(1) >= channels,
                 "GenerationState::step: the DiT returned ", out.describe(), " for latents ",
                 latents_.describe());
  const Tensor cond = out.narrow(0, 0, 1).narrow(1, 0, channels);
  const Tensor uncond = out.narrow(0, 1, 1).narrow(1, 0, channels);
  const Tensor velocity = apply_guidance(be, cond, uncond, options_.guidance);
  switch (options_.sampler) {
    case SamplerKind::rectified_flow:
      latents_ = add_scaled(be, latents_, velocity, rflow_dt(timesteps_, step_));
      break;
    case SamplerKind::unipc:
      latents_ = unipc_->step(be, velocity, latents_);
      break;
    case SamplerKind::euler:
      latents_ = flow_euler_step(be, latents_, velocity, sigmas_[step_], sigmas_[step_ + 1]);
      break;
  }
  ++step_;
}

std::optional<FlowUniPC::History> GenerationState::solver_history() const {
  if (!unipc_) return std::nullopt;
  return unipc_->history();
}

void GenerationState::restore_solver_history(FlowUniPC::History history) {
  DITSERVE_CHECK(unipc_.has_value(), "history: the ", sampler_name(options_.sampler),
                 " sampler keeps no history");
  FlowUniPC solver(sigmas_, 2, step_, std::move(history));  // the old one stays if this throws
  unipc_ = std::move(solver);
}

void GenerationState::move_to(Backend& from, Backend& to) {
  latents_ = transfer(from, latents_, to);
  captions_ = transfer(from, captions_, to);
  caption_lengths_ = transfer(from, caption_lengths_, to);
  if (unipc_) unipc_->move_to(from, to);
}

}  // namespace ditserve
