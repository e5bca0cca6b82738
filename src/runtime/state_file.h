#pragma once
// A job's durable denoising state (JobSpec::state_file): the latents after some step,
// that step's index and the sampler's history (UniPC's last predictions and sample; the
// other samplers keep none), with the request they belong to, in a safetensors file
// replaced atomically. A job resumed from it continues exactly as the uninterrupted run
// would. The captions are not saved: resuming encodes the prompt again, which gives the
// same captions.

#include <filesystem>
#include <optional>
#include <string>

#include "pipeline/pipeline.h"

namespace ditserve::runtime {

struct SavedState {
  Tensor latents;  // host f32, as GenerationState::latents()
  int step = 0;    // steps done
  std::optional<FlowUniPC::History> unipc;  // host tensors; the unipc sampler's only
};

// REQUIRES: `state` (of `request` for `model`) on the host.
void save_state(const std::filesystem::path& path, const std::string& model,
                const GenerateRequest& request, const GenerationState& state);

// Reads a state written by save_state for the same model and request (prompt, negative
// prompt, size, frames, steps, guidance, fps, seed, sampler and shift, unset ones as the
// model's defaults resolve them) with latents of `latent_shape`; a file of the first
// format (latents and step only, before the history was saved) is read without a history.
// Throws InvalidArgument naming "state_file" when it is unreadable or belongs to another
// request.
SavedState load_state(const std::filesystem::path& path, const std::string& model,
                      const GenerateRequest& request, const Shape& latent_shape);

// `fresh`, the request's state just started on `be` (its captions encoded there), moved on
// to the saved step with the saved latents and sampler history. Throws InvalidArgument
// naming "state_file" when the saved history does not fit the step.
GenerationState resume_state(const SavedState& saved, const GenerationState& fresh, Backend& be);

}  // namespace ditserve::runtime
