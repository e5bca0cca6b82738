#pragma once
// One request end to end on one backend: prompt -> tokens -> caption embeddings (plus the
// model's cached null caption) -> seeded noise -> GenerationState, stepped by the caller
// -> VAE decode -> host frames. The caller drives the steps so it can report progress (the
// CLI) or move the state between devices (the runtime).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "models/graphed_transformer.h"
#include "models/registry.h"
#include "pipeline/rectified_flow.h"
#include "pipeline/tokenizer.h"

namespace ditserve {

// What a user asks for; the CLI and (later) the HTTP API fill the same struct. The
// defaults are Open-Sora's; default_request() gives each model's.
struct GenerateRequest {
  std::string prompt;
  std::int64_t frames = 16;
  std::int64_t height = 64;
  std::int64_t width = 64;
  int steps = 30;          // Open-Sora's sample.py
  float guidance = 7.0f;   // classifier-free guidance scale
  float fps = 24.0f;       // STDiT3's fps conditioning and the MP4 frame rate
  std::uint64_t seed = 0;  // the initial noise (gaussian_noise)
  // Wan only: the unconditional branch's prompt; empty = the model's default (Wan's
  // sample_neg_prompt).
  std::string negative_prompt;
  // Unset: the model's (rflow for Open-Sora; unipc for Wan, which also takes euler).
  std::optional<SamplerKind> sampler;
  std::optional<double> shift;  // Wan's flow shift; unset: the model's default
};

// The model's defaults: Open-Sora's as GenerateRequest; Wan's from ModelSpec::wan_sampling
// (frames, size, steps, guidance, fps, sampler unipc, shift).
GenerateRequest default_request(const ModelSpec& spec);

// Throws InvalidArgument naming the first bad field and what is allowed: frames the VAE
// decodes ("frames": >= 1 for Open-Sora, 4k+1 for Wan), width/height positive multiples
// of spec.size_multiple() ("size"), steps >= 1, guidance and fps finite (fps > 0), a
// sampler the model takes ("sampler"), shift > 0 ("shift"). The prompts are checked by
// encode().
void validate_request(const ModelSpec& spec, const GenerateRequest& request);

// The model's tokenizer: DIR/tokenizer/spiece.model when a weights directory is given and
// holds one, else the built-in tiny tokenizer for models with built-in weights. Throws
// InvalidArgument naming "weights" when there is none.
Tokenizer load_tokenizer(const ModelSpec& spec,
                         const std::optional<std::filesystem::path>& weights_dir);

// A prompt's captions for the CFG batch.
struct Captions {
  // Open-Sora: [2, L, C], the prompt's then the null caption's first L rows.
  // Wan: [2, L, C], the prompt's then the negative prompt's, each zero past its length
  // (L the longer of the two; the DiT zero-pads to its text_len as Wan does).
  Tensor embeddings;
  Tensor lengths;  // i32 [2]: Open-Sora {L, L}; Wan each row's token count
};

// How a Pipeline runs its models; the defaults are the plain eager path.
struct PipelineOptions {
  // The DiT step through a GraphedTransformer (models/graphed_transformer.h): per input
  // shape, eager once, then captured and replayed (on CUDA one graph launch per step; on
  // the CPU backend the same results, no gain). A shape whose capture fails is reported on
  // stderr and runs eagerly. Off until measured on a GPU.
  bool cuda_graphs = false;
};

class Pipeline {
 public:
  // Loads the tokenizer (load_tokenizer), then the model (load_model). Throws
  // InvalidArgument naming "weights" when the tokenizer is missing or its vocabulary
  // exceeds the text encoder's, and (Wan) "negative_prompt" when the model's default
  // negative prompt does not fit the encoder.
  Pipeline(ModelSpec spec, Backend& be, const std::optional<std::filesystem::path>& weights_dir,
           PipelineOptions options = {});
  ~Pipeline();

  // Throws InvalidArgument naming "prompt" for an empty or over-long prompt: an over-long
  // prompt is refused, never truncated (Wan's tokenizer would cut it at 512 tokens).
  Captions encode(std::string_view prompt);
  // Wan: with `negative_prompt` for the unconditional branch (empty: the model's default,
  // embedded once and cached); a too-long one is refused naming "negative_prompt".
  // Open-Sora ignores it.
  Captions encode(std::string_view prompt, std::string_view negative_prompt);
  // The request's initial state: noise [1, C, latent_frames, h, w] from request.seed and
  // the request's (or the model's) sampler.
  // REQUIRES: validate_request(spec(), request) passed.
  GenerationState start(const GenerateRequest& request, Captions captions);
  // Decodes a finished state: host f32 [1, 3, frames, H, W] in about [-1, 1].
  Tensor decode(const GenerationState& state);

  const ModelSpec& spec() const { return spec_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  Backend& backend() const { return be_; }
  // The DiT as steps should call it: with cuda_graphs, the GraphedTransformer around the
  // model (unwrap_graphed() gives the model, for a sequence-parallel step's stages).
  DiffusionTransformer& transformer() const {
    return graphed_ ? *graphed_ : *model_.transformer;
  }
  VideoDecoder& vae() const { return *model_.vae; }

 private:
  ModelSpec spec_;
  Backend& be_;
  // [1, L, C] caption embedding of `ids` in the transformer's caption dtype.
  Tensor embed(const std::vector<std::int32_t>& ids);

  Tokenizer tokenizer_;
  LoadedModel model_;
  std::vector<std::int32_t> default_negative_ids_;  // Wan: sample_neg_prompt
  Tensor default_negative_;                         // its embedding, once computed
  std::unique_ptr<GraphedTransformer> graphed_;     // after model_: it refers to the DiT
};

}  // namespace ditserve
