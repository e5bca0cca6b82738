#pragma once
// Open-Sora 1.2's video VAE decoder (`OpenSoraVAE_V1_2`, a VideoAutoencoderPipeline):
// latents are de-normalised per channel (z·scale + shift), decoded in time by the
// temporal VAE in micro chunks, then each frame by the SD(XL) VAE decoder.
//
// Frames: every count >= 1 is decodable. Video is cut into micro chunks of
// micro_frame_size (17) frames plus a shorter tail; a chunk of n frames has
// ceil(n / 4) latent frames (5 for 17), so latent_frames(17 q + r) = 5 q + ceil(r / 4):
// 16 -> 4, 17 -> 5, 51 -> 15, 102 -> 30. Decoding a chunk of n' latent frames yields
// 4 n' frames of which the first 4 n' - n are the causal front padding and are dropped.

#include <cstdint>
#include <vector>

#include "models/interfaces.h"
#include "models/sd_vae_decoder.h"
#include "models/temporal_vae_decoder.h"
#include "models/weights.h"

namespace ditserve {

struct OpenSoraVAEConfig {
  SdVaeDecoderConfig spatial;
  TemporalVaeDecoderConfig temporal;
  std::int64_t micro_frame_size = 17;  // video frames per temporal chunk
  // Frames per spatial-decoder call; bounds activation memory (Open-Sora: 4).
  std::int64_t spatial_micro_batch = 4;
  // Open-Sora's hard-coded SD scaling (not SDXL's 0.13025): the spatial decoder gets z / it.
  float spatial_scaling = 0.18215f;

  // Throws InvalidArgument naming the field that makes the config unusable.
  void validate() const;
};

// The published model (hpcai-tech/OpenSora-VAE-v1.2).
OpenSoraVAEConfig opensora_vae_v1_2();
// Same structure (two temporal upsamplings, spatial factor 8, mid-block attention) with
// few channels, for CI and the built-in `tiny` model.
OpenSoraVAEConfig opensora_vae_tiny();

// The decoder-side parameters by their public names: "spatial_vae.module.{post_quant_conv,
// decoder}.*", "temporal_vae.{post_quant_conv,decoder}.*", and the buffers "scale" and
// "shift" [1, C, 1, 1, 1] (initialised to 1 and 0 for random checkpoints; the v1.2
// checkpoint holds scale (3.85, 2.32, 2.33, 3.06), shift (-0.10, 0.34, 0.27, 0.98)).
// Encoder tensors in a checkpoint are ignored.
std::vector<ParamSpec> opensora_vae_decoder_parameters(const OpenSoraVAEConfig& cfg);

// Latent frames for `frames` video frames (see the top of this file); throws
// InvalidArgument naming "frames" when frames < 1.
std::int64_t opensora_vae_latent_frames(const OpenSoraVAEConfig& cfg, std::int64_t frames);

class OpenSoraVAE final : public VideoDecoder {
 public:
  // Loads the parameters from `weights` onto `be`, computing in `dtype`.
  OpenSoraVAE(const OpenSoraVAEConfig& cfg, const WeightSource& weights, Backend& be,
              DType dtype);

  std::int64_t latent_channels() const override { return cfg_.temporal.channels; }
  std::int64_t spatial_factor() const override { return cfg_.spatial.spatial_factor(); }
  std::int64_t latent_frames(std::int64_t frames) const override;
  // REQUIRES latents on the model's device with latents.size(2) == latent_frames(frames);
  // throws InvalidArgument naming "latents" or "frames" otherwise.
  Tensor decode(const Tensor& latents, std::int64_t frames) override;
  // decode() patch parallel: every frame is cut into bands of rows over ctx's members and
  // the temporal and spatial decoders run on the bands (parallel/spatial_shards.h); the
  // video is gathered on ctx's member 0. The model's device must be in ctx's fabric; a
  // member uses its own parameters where ctx lists them (loaded_parameters()), else this
  // model's are copied to it once per context. On a one-device context this is decode(),
  // bit for bit. Throws InvalidArgument naming "rows" when the latents have
  // fewer rows than ctx has members.
  Tensor decode_patch_parallel(SpatialShardContext& ctx, const Tensor& latents,
                               std::int64_t frames) override;
  bool decodes_patch_parallel() const override { return true; }
  std::vector<Tensor> loaded_parameters() const override;

  // The stages, for tests and tools. Channels-last, compute dtype.
  // z [B, T', h, w, C] (de-normalised) -> SD-VAE latents [B, frames, h, w, C].
  Tensor decode_temporal(const Tensor& z, std::int64_t frames) const;
  // SD-VAE latents [N, h, w, C] -> images [N, h·f, w·f, 3] (divides by spatial_scaling).
  Tensor decode_spatial(const Tensor& x) const;
  // The same on bands of rows (dim 2 of z, dim 1 of x).
  Bands decode_temporal(SpatialShardContext& ctx, const Bands& z, std::int64_t frames) const;
  Bands decode_spatial(SpatialShardContext& ctx, const Bands& x) const;

 private:
  OpenSoraVAEConfig cfg_;
  Backend& be_;
  DType dtype_;
  Tensor scale_, shift_;     // f32 [C]
  Tensor inv_scaling_;       // compute dtype [1]: 1 / spatial_scaling
  TemporalVaeDecoder temporal_;
  SdVaeDecoder spatial_;
};

}  // namespace ditserve
