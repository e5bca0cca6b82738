#pragma once
// One request end to end on one backend: prompt -> tokens -> caption embeddings (plus the
// model's cached null caption) -> seeded noise -> GenerationState, stepped by the caller
// -> VAE decode -> host frames. The caller drives the steps so it can report progress (the
// CLI) or move the state between devices (the runtime).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "models/registry.h"
#include "pipeline/rectified_flow.h"
#include "pipeline/tokenizer.h"

namespace ditserve {

// What a user asks for; the CLI and (later) the HTTP API fill the same struct.
struct GenerateRequest {
  std::string prompt;
  std::int64_t frames = 16;
  std::int64_t height = 64;
  std::int64_t width = 64;
  int steps = 30;          // Open-Sora's sample.py
  float guidance = 7.0f;   // classifier-free guidance scale
  float fps = 24.0f;       // STDiT3's fps conditioning and the MP4 frame rate
  std::uint64_t seed = 0;  // the initial noise (gaussian_noise)
};

// Throws InvalidArgument naming the first bad field and what is allowed: frames >= 1
// (what the VAE decodes), width/height positive multiples of spec.size_multiple(),
// steps >= 1, guidance and fps finite (fps > 0). The prompt is checked by encode().
void validate_request(const ModelSpec& spec, const GenerateRequest& request);

// The model's tokenizer: DIR/tokenizer/spiece.model when a weights directory is given and
// holds one, else the built-in tiny tokenizer for models with built-in weights. Throws
// InvalidArgument naming "weights" when there is none.
Tokenizer load_tokenizer(const ModelSpec& spec,
                         const std::optional<std::filesystem::path>& weights_dir);

// A prompt's captions for the CFG batch.
struct Captions {
  Tensor embeddings;  // [2, L, C]: the prompt's, then the null caption's first L rows
  Tensor lengths;     // i32 [2]: {L, L}
};

class Pipeline {
 public:
  // Loads the tokenizer (load_tokenizer), then the model (load_model). Throws
  // InvalidArgument naming "weights" when the tokenizer is missing or its vocabulary
  // exceeds the text encoder's.
  Pipeline(ModelSpec spec, Backend& be, const std::optional<std::filesystem::path>& weights_dir);

  // Throws InvalidArgument naming "prompt" for an empty or over-long prompt.
  Captions encode(std::string_view prompt);
  // The request's initial state: noise [1, C, latent_frames, h, w] from request.seed.
  // REQUIRES: validate_request(spec(), request) passed.
  GenerationState start(const GenerateRequest& request, Captions captions);
  // Decodes a finished state: host f32 [1, 3, frames, H, W] in about [-1, 1].
  Tensor decode(const GenerationState& state);

  const ModelSpec& spec() const { return spec_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  Backend& backend() const { return be_; }
  DiffusionTransformer& transformer() const { return *model_.transformer; }
  VideoDecoder& vae() const { return *model_.vae; }

 private:
  ModelSpec spec_;
  Backend& be_;
  Tokenizer tokenizer_;
  LoadedModel model_;
};

}  // namespace ditserve
