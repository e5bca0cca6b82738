#pragma once
// The three model roles of a text-to-video pipeline, as small interfaces so that another
// family (Wan 2.1, an image MMDiT) is an addition, not a rewrite. A model object owns its
// weights on one Backend and runs there; it is not thread-safe.

#include <cstdint>
#include <string_view>
#include <vector>

#include "comm/fabric.h"
#include "kernels/backend.h"

namespace ditserve {

class SpatialShardContext;  // parallel/spatial_shards.h

// Tokens -> caption embeddings (T5, UMT5).
class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  virtual std::int64_t hidden_size() const = 0;
  virtual std::int64_t max_tokens() const = 0;
  // ids: i32 [B, L] on the model's device, L <= max_tokens(); lengths: i32 [B], the
  // number of valid (non-padding) tokens of each row, >= 1. Returns [B, L, hidden_size()].
  virtual Tensor encode(const Tensor& ids, const Tensor& lengths) = 0;
};

// What one evaluation of the denoising network needs.
struct DenoiseInputs {
  Tensor latents;          // f32 [B, C, T, H, W]
  Tensor timesteps;        // f32 [B], in [0, 1000]
  Tensor captions;         // [B, L, caption_channels] from the TextEncoder
  // i32 [B], each in [1, L]. A model checks the values only where the tensor lives on a
  // CPU device: reading a GPU's would wait for the GPU at every step. Whoever fills a GPU
  // tensor from host values checks them there (check_caption_lengths).
  Tensor caption_lengths;
  float fps = 24.0f;       // conditioning (STDiT3's size/fps embedders)
  std::int64_t height = 0;  // pixel size of the video being generated
  std::int64_t width = 0;
};

// One copy of `in` per member of `group`, on that member's device, in member order; `in`'s
// tensors live on the first member, which gets them as they are (parallel/replicate.h).
std::vector<DenoiseInputs> replicate_inputs(Fabric& fabric, const DeviceGroup& group,
                                            const DenoiseInputs& in);

// Throws InvalidArgument naming `caption_lengths` (after `who`, e.g. "STDiT3") unless each
// value of lengths (i32 [B] on a CPU device) lies in [1, tokens], tokens being the
// captions' L.
void check_caption_lengths(std::string_view who, const Tensor& lengths, std::int64_t tokens);

// The diffusion transformer: predicts the flow (velocity) for the latents.
class DiffusionTransformer {
 public:
  virtual ~DiffusionTransformer() = default;
  virtual std::int64_t latent_channels() const = 0;
  // Returns f32 [B, latent_channels(), T, H, W]: the velocity the sampler integrates.
  virtual Tensor forward(const DenoiseInputs& inputs) = 0;
};

// Latents -> video frames.
class VideoDecoder {
 public:
  virtual ~VideoDecoder() = default;
  virtual std::int64_t latent_channels() const = 0;
  virtual std::int64_t spatial_factor() const = 0;  // pixels per latent row/column
  // Latent frames for `frames` video frames; throws InvalidArgument naming "frames"
  // when the decoder cannot produce that count.
  virtual std::int64_t latent_frames(std::int64_t frames) const = 0;
  // latents f32 [B, C, T', h, w] -> f32 [B, 3, frames, h*f, w*f] in [-1, 1] (unclamped).
  virtual Tensor decode(const Tensor& latents, std::int64_t frames) = 0;
  // Whether decode_patch_parallel() is implemented (false: the decoder runs on one device).
  virtual bool decodes_patch_parallel() const { return false; }
  // decode() over ctx's members, every frame cut into bands of rows, the video gathered on
  // member 0 (see each decoder). The default throws InvalidArgument.
  virtual Tensor decode_patch_parallel(SpatialShardContext& ctx, const Tensor& latents,
                                       std::int64_t frames);
  // Every parameter tensor the decoder holds on its device (all that
  // decode_patch_parallel() hands SpatialShardContext::param among them), in an order that
  // depends only on the configuration: decoders of one model loaded on several devices
  // list the same parameter at the same index, which is what lets a patch-parallel decode
  // use each member's own copy (MemberParams). The default lists none (members get copies).
  virtual std::vector<Tensor> loaded_parameters() const { return {}; }
};

}  // namespace ditserve
