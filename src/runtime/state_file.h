#pragma once
// A job's durable denoising state (JobSpec::state_file): the latents after some step and
// that step's index, with the request they belong to, in a safetensors file replaced
// atomically. The captions are not saved: resuming encodes the prompt again, which gives
// the same captions.

#include <filesystem>
#include <string>

#include "pipeline/pipeline.h"

namespace ditserve::runtime {

struct SavedState {
  Tensor latents;  // host f32, as GenerationState::latents()
  int step = 0;    // steps done
};

// REQUIRES: latents on the host.
void save_state(const std::filesystem::path& path, const std::string& model,
                const GenerateRequest& request, const Tensor& latents, int step);

// Reads a state written by save_state for the same model and request (prompt, size,
// frames, steps, guidance, fps, seed) with latents of `latent_shape`. Throws
// InvalidArgument naming "state_file" when it is unreadable or belongs to another request.
SavedState load_state(const std::filesystem::path& path, const std::string& model,
                      const GenerateRequest& request, const Shape& latent_shape);

}  // namespace ditserve::runtime
