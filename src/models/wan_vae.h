#pragma once
// Wan 2.1's video VAE decoder (WanVAE_ in Wan-Video/Wan2.1 wan/modules/vae.py; diffusers'
// AutoencoderKLWan): latents [B, 16, T', h, w] are de-normalised per channel (z * std +
// mean, the constants of Wan's WanVAE class), go through the 1×1×1 post-quant conv, then
// the causal decoder one latent frame at a time, carrying each causal conv's last input
// frames (models/wan_vae_blocks.h). The first latent frame gives 1 video frame, each
// later one time_factor() (4): frames = 4(T' - 1) + 1. Space grows by 8.
//
// Decoder structure (dims = base_dim * [dim_mult[-1]] + reversed(dim_mult)): conv_in to
// dims[0]; middle: residual block, attention block, residual block; per level i:
// num_res_blocks + 1 residual blocks to dims[i+1] (inputs dims[i] / 2 after level 0),
// then, except after the last level, a Resample (upsample3d where the reversed
// temporal_downsample says so, else upsample2d) halving the channels; RMS_norm, SiLU and
// a causal conv to RGB.

#include <cstdint>
#include <vector>

#include "models/interfaces.h"
#include "models/wan_vae_blocks.h"
#include "models/weights.h"

namespace ditserve {

struct WanVAEConfig {
  std::int64_t z_dim = 16;
  std::int64_t base_dim = 96;
  std::vector<std::int64_t> dim_mult{1, 2, 4, 4};
  std::int64_t num_res_blocks = 2;
  // Encoder order, as Wan's config; the decoder upsamples in time where the reversed
  // list is true.
  std::vector<bool> temporal_downsample{false, true, true};
  // Latent statistics (WanVAE.__init__ / AutoencoderKLWan latents_mean, latents_std).
  std::vector<float> latents_mean;
  std::vector<float> latents_std;

  std::int64_t spatial_factor() const;  // 2^(dim_mult.size() - 1)
  std::int64_t time_factor() const;     // 2^(true entries of temporal_downsample)
  // Throws InvalidArgument naming the field that makes the config unusable.
  void validate() const;
};

// Wan2.1_VAE.pth (both Wan 2.1 T2V sizes use it).
WanVAEConfig wan_vae_2_1();
// The same structure (two time doublings, spatial factor 8, 16 latent channels and
// Wan's statistics) with base_dim 8, for CI and `tiny-wan`.
WanVAEConfig wan_vae_tiny();

// Decoder-side parameters in `layout`'s names; both layouts list the same tensors in the
// same order, so entry i of one is entry i of the other. Encoder tensors in a checkpoint
// are ignored.
std::vector<ParamSpec> wan_vae_decoder_parameters(const WanVAEConfig& cfg, WanVaeLayout layout);

// Which layout `weights` holds (by its post-quant conv); throws InvalidArgument naming
// both candidate tensors and the source when it holds neither.
WanVaeLayout detect_wan_vae_layout(const WeightSource& weights);

// (frames - 1) / 4 + 1; throws InvalidArgument naming "frames" unless frames = 4k + 1.
std::int64_t wan_vae_latent_frames(const WanVAEConfig& cfg, std::int64_t frames);

class WanVAE final : public VideoDecoder {
 public:
  // Loads the decoder from `weights` (either layout, detected) onto `be` in `dtype`.
  WanVAE(const WanVAEConfig& cfg, const WeightSource& weights, Backend& be, DType dtype);

  std::int64_t latent_channels() const override { return cfg_.z_dim; }
  std::int64_t spatial_factor() const override { return cfg_.spatial_factor(); }
  std::int64_t latent_frames(std::int64_t frames) const override;
  // REQUIRES latents f32 [B, z_dim, latent_frames(frames), h, w] on the model's device;
  // throws InvalidArgument naming "latents" or "frames" otherwise.
  Tensor decode(const Tensor& latents, std::int64_t frames) override;
  // decode() patch parallel: every frame is cut into bands of rows over ctx's members
  // (parallel/spatial_shards.h), each band decoded with its own causal caches, halo rows
  // exchanged before every spatial conv and the attention's keys and values gathered per
  // frame; the video is gathered on ctx's member 0. The model's device must be in ctx's
  // fabric; a member uses its own parameters where ctx lists them (loaded_parameters()),
  // else this model's are copied to it once per context. On a one-device context this is
  // decode(), bit for bit. Throws InvalidArgument naming "rows" when the
  // latents have fewer rows than ctx has members.
  Tensor decode_patch_parallel(SpatialShardContext& ctx, const Tensor& latents,
                               std::int64_t frames) override;
  bool decodes_patch_parallel() const override { return true; }
  std::vector<Tensor> loaded_parameters() const override;

  // De-normalised latents after the post-quant conv, channels-last [N, T', h, w, z_dim]
  // in the compute dtype -> frames [N, 4(T'-1)+1, 8h, 8w, 3]. chunked: one latent frame at
  // a time with the causal caches (what decode() does); else the whole sequence in one
  // pass, which must give the same values (tests).
  Tensor decode_frames(const Tensor& x, bool chunked) const;
  // The same on bands of rows (dim 2) of x.
  Bands decode_frames(SpatialShardContext& ctx, const Bands& x, bool chunked) const;
  // Latents f32 [B, z_dim, T', h, w] -> decode_frames' input (de-normalise, conv2).
  Tensor prepare(const Tensor& latents) const;
  WanVaeLayout layout() const { return layout_; }

 private:
  struct Level {
    std::vector<WanResidualBlock> res_blocks;
    std::vector<WanUpsample> upsample;  // empty for the last level
  };
  Bands decode_chunk(SpatialShardContext& ctx, const Bands& x, const BandCaches& caches) const;

  WanVAEConfig cfg_;
  Backend& be_;
  DType dtype_;
  WanVaeLayout layout_;
  Tensor mean_, std_;  // compute dtype [z_dim]
  WanCausalConv3d post_quant_conv_;
  WanCausalConv3d conv_in_;
  std::vector<WanResidualBlock> mid_res_;    // two
  std::vector<WanAttentionBlock> mid_attn_;  // one
  std::vector<Level> levels_;
  WanRmsNorm norm_out_;
  WanCausalConv3d conv_out_;
};

}  // namespace ditserve
