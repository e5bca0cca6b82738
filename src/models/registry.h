#pragma once
// Named model configurations (what `--model` selects) and how their weights are laid out
// on disk. A model is a text encoder, a diffusion transformer and a video decoder behind
// the interfaces of models/interfaces.h, plus the tokenizer the pipeline reads.
//
// Weights directory (`--weights DIR`, written by `ditserve make-weights MODEL DIR`):
//   DIR/text_encoder/   transformers' T5EncoderModel tensors (shared.weight, encoder.*)
//   DIR/transformer/    Open-Sora's STDiT3 state dict (x_embedder.*, spatial_blocks.*, …)
//   DIR/vae/            Open-Sora's VideoAutoencoderPipeline (spatial_vae.module.*, …)
//   DIR/tokenizer/spiece.model   T5's SentencePiece model
// Wan 2.1 models use the same directories, each in either public naming (detected per
// component, WeightLayout): Wan's own release (UMT5 as Wan's T5Encoder, WanModel,
// Wan2.1_VAE) or diffusers' (UMT5EncoderModel, WanTransformer3DModel, AutoencoderKLWan);
// DIR/tokenizer/spiece.model is google/umt5-xxl's.
// Each component directory holds one .safetensors file or a sharded index with its shards
// (io/checkpoint.h), i.e. the files of the public hub repositories.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/interfaces.h"
#include "models/opensora_vae.h"
#include "models/stdit3.h"
#include "models/t5_encoder.h"
#include "models/wan_transformer.h"
#include "models/wan_vae.h"
#include "models/weights.h"

namespace ditserve {

enum class ModelFamily {
  opensora,  // T5 v1.1 + STDiT3 + Open-Sora VAE (the fields text_encoder, transformer, vae)
  wan,       // UMT5 (text_encoder) + Wan DiT (wan_transformer) + Wan VAE (wan_vae)
};

// Wan's sampling defaults (wan/configs, generate.py and its README; see registry.cc).
struct WanSampling {
  int steps = 50;
  float guidance = 5.0f;
  double shift = 5.0;
  float fps = 16.0f;            // sample_fps
  std::int64_t frames = 81;
  std::int64_t width = 832;
  std::int64_t height = 480;
  std::string negative_prompt;  // sample_neg_prompt
};

struct ModelSpec {
  std::string name;
  T5Config text_encoder;
  STDiT3Config transformer;
  OpenSoraVAEConfig vae;
  // Set for models whose default weights are built in (seeded random values, `tiny`);
  // unset when weights must come from a directory.
  std::optional<std::uint64_t> builtin_seed;
  ModelFamily family = ModelFamily::opensora;
  WanConfig wan_transformer;  // family == wan
  WanVAEConfig wan_vae;       // family == wan
  WanSampling wan_sampling;   // family == wan

  bool is_wan() const { return family == ModelFamily::wan; }
  // Width and height must be multiples of this: VAE factor times the DiT's patch size.
  std::int64_t size_multiple() const;
  // Longest prompt in tokens (with </s>): the encoder's and the DiT's caption limit.
  std::int64_t max_prompt_tokens() const;
  // Latent frames for `frames` video frames; throws InvalidArgument naming "frames" (and
  // the rule, e.g. 4k+1 for Wan) for a count the VAE cannot produce.
  std::int64_t latent_frames(std::int64_t frames) const;
  std::int64_t latent_channels() const;
};

// "opensora-v1.2" (T5 v1.1 XXL, STDiT3-XL/2, Open-Sora VAE 1.2; weights from a directory)
// and "tiny" (the same architectures scaled down; built-in weights from seed 0);
// "wan2.1-t2v-1.3b", "wan2.1-t2v-14b" (UMT5-XXL, Wan DiT, Wan 2.1 VAE; weights from a
// directory) and "tiny-wan" (scaled down; built-in weights from seed 0).
std::vector<std::string> model_names();
// Throws InvalidArgument naming "model" and listing the known names for any other name.
ModelSpec find_model(std::string_view name);

// One component's checkpoint: its directory under the weights directory and its tensors.
struct ComponentWeights {
  std::string dir;  // "text_encoder", "transformer" or "vae"
  std::vector<ParamSpec> params;
};
// The public naming a checkpoint is written in. Open-Sora models have one (original);
// Wan models have Wan's own release (original) and diffusers'.
enum class WeightLayout { original, diffusers };
// Throws InvalidArgument naming "layout" for anything but "original" or "diffusers".
WeightLayout parse_weight_layout(std::string_view name);
// The three components, in that order, named in `layout`. Throws InvalidArgument naming
// "layout" for diffusers with an Open-Sora model.
std::vector<ComponentWeights> model_components(const ModelSpec& spec,
                                               WeightLayout layout = WeightLayout::original);
// The tokenizer model, relative to the weights directory.
inline constexpr std::string_view kTokenizerPath = "tokenizer/spiece.model";

// Compute dtypes, as Open-Sora runs them: all f32 on the CPU backend; on CUDA the text
// encoder in f32 and the DiT and VAE in bf16.
struct ModelDTypes {
  DType text_encoder = DType::f32;
  DType transformer = DType::f32;
  DType vae = DType::f32;
};
ModelDTypes default_dtypes(Device device);
// Per model: Open-Sora as above; Wan as Wan 2.1 runs: all f32 on the CPU backend; on CUDA
// the text encoder and DiT in bf16 (t5_dtype, param_dtype) and the VAE in f32 (WanVAE's
// default dtype).
ModelDTypes default_dtypes(const ModelSpec& spec, Device device);

// The three models on one backend.
struct LoadedModel {
  std::vector<std::unique_ptr<WeightSource>> sources;  // kept alive for the models
  std::unique_ptr<TextEncoder> text_encoder;
  std::unique_ptr<DiffusionTransformer> transformer;
  std::unique_ptr<VideoDecoder> vae;
  // Classifier-free guidance's null caption, [1, max_prompt_tokens, caption_channels] in
  // the transformer's dtype (STDiT3's y_embedding); a request uses its first L rows.
  // Undefined for Wan, whose unconditional branch encodes a negative prompt.
  Tensor null_caption;
  DType caption_dtype = DType::f32;  // what the transformer takes as captions
};

// Throws InvalidArgument naming "weights" (and how to make some) when `spec` has no
// built-in weights and no directory is given.
void require_weights(const ModelSpec& spec, const std::optional<std::filesystem::path>& weights_dir);

// Loads `spec` onto `be`: from `weights_dir` when given (layout above), else from the
// built-in weights. Throws InvalidArgument naming "weights" when the model has no
// built-in weights and no directory is given, and naming the tensor and file for a
// missing or mis-shaped tensor.
LoadedModel load_model(const ModelSpec& spec, Backend& be,
                       const std::optional<std::filesystem::path>& weights_dir);

}  // namespace ditserve
