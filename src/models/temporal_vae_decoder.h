#pragma once
// The temporal half of Open-Sora 1.2's VAE decoder (`VAE_Temporal_SD`, MAGVIT-v2 style):
// causal 3D convolutions that turn T' latent frames into time_factor()·T' frames of
// SD-VAE latents. Tensors are channels-last, [N, T, H, W, C]; parameter names and shapes
// are Open-Sora's (`opensora/models/vae/vae_temporal.py`, tag v1.2.0).

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "models/weights.h"
#include "parallel/spatial_shards.h"

namespace ditserve {

struct TemporalVaeDecoderConfig {
  std::int64_t channels = 4;  // latents in and out (in_out_channels = latent_embed_dim = 4)
  std::int64_t filters = 128;
  std::int64_t num_res_blocks = 4;
  std::vector<std::int64_t> channel_multipliers{1, 2, 2, 4};
  // One entry per level transition (channel_multipliers.size() - 1); true doubles time.
  std::vector<bool> temporal_downsample{false, true, true};
  int norm_groups = 32;
  float norm_eps = 1e-5f;  // nn.GroupNorm's default; Open-Sora does not override it

  std::int64_t time_factor() const;  // 2^(number of true entries in temporal_downsample)
  // Throws InvalidArgument naming the field that makes the config unusable.
  void validate() const;
};

// Every module also runs patch parallel: forward(ctx, bands) takes bands of rows along H
// (dim 2 of [N, T, H, W, C]) over ctx's members (parallel/spatial_shards.h). The convs are
// 3x3x3, so they pad and mix along H too and exchange one halo row; the GroupNorms take
// the statistics of the whole (T, H, W) volume. forward(be, x) is the one-device case.

// Conv3d padded causally in time (k_t - 1 zero frames in front, none behind) and by k/2
// on each side in space; stride 1 (the decoder uses no other). Open-Sora stores its
// weights as `<prefix>conv.weight` [out, in, kt, kh, kw] and `<prefix>conv.bias` [out].
class CausalConv3d {
 public:
  // `w` is rooted at the module (the name before ".conv.weight").
  CausalConv3d(const WeightLoader& w, std::int64_t in, std::int64_t out,
               std::array<int, 3> kernel, bool bias);
  static void append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                            std::int64_t in, std::int64_t out, std::array<int, 3> kernel,
                            bool bias);
  // x [N, T, H, W, in] -> [N, T, H, W, out]; output frame t sees input frames <= t.
  Tensor forward(Backend& be, const Tensor& x) const;
  Bands forward(SpatialShardContext& ctx, const Bands& x) const;
  // Appends every parameter tensor, in a fixed order (VideoDecoder::loaded_parameters).
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  std::array<int, 3> kernel_;
  Tensor weight_;  // channels-last [out, kt, kh, kw, in]
  Tensor bias_;    // undefined without bias
};

// MAGVIT ResBlock: GN -> SiLU -> conv3³ -> GN -> SiLU -> conv3³ (convs without bias),
// plus a 1×1×1 `conv3` shortcut when the channel count changes.
class TemporalResBlock {
 public:
  TemporalResBlock(const WeightLoader& w, std::int64_t in, std::int64_t out, int groups,
                   float eps);
  static void append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                            std::int64_t in, std::int64_t out);
  // x [N, T, H, W, in] -> [N, T, H, W, out].
  Tensor forward(Backend& be, const Tensor& x) const;
  Bands forward(SpatialShardContext& ctx, const Bands& x) const;
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  int groups_;
  float eps_;
  Tensor norm1_weight_, norm1_bias_, norm2_weight_, norm2_bias_;
  CausalConv3d conv1_, conv2_;
  std::vector<CausalConv3d> shortcut_;  // empty or one 1×1×1 conv
};

// einops "B (C ts) T H W -> B C (T ts) H W" in channels-last form: input channel
// c·factor + s becomes channel c of output frame t·factor + s.
// x [N, T, H, W, C·factor] -> [N, T·factor, H, W, C], contiguous.
Tensor depth_to_time(Backend& be, const Tensor& x, std::int64_t factor);

// post_quant_conv followed by the decoder; `decode` of VAE_Temporal without its crop.
class TemporalVaeDecoder {
 public:
  // `w` is rooted at the temporal VAE (Open-Sora: "temporal_vae.").
  TemporalVaeDecoder(const TemporalVaeDecoderConfig& cfg, const WeightLoader& w);
  // Decoder-side parameters, names prefixed by `prefix`.
  static std::vector<ParamSpec> parameters(const TemporalVaeDecoderConfig& cfg,
                                           const std::string& prefix);

  // z [N, T', h, w, channels] -> [N, time_factor()·T', h, w, channels]. VAE_Temporal
  // then drops the first (time_factor - frames % time_factor) % time_factor frames.
  Tensor forward(Backend& be, const Tensor& z) const;
  Bands forward(SpatialShardContext& ctx, const Bands& x) const;
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  struct Level {  // one entry of block_res_blocks, and the conv_block above it
    std::vector<TemporalResBlock> res_blocks;
    std::vector<CausalConv3d> upsample;  // empty (Identity) or the channel-doubling conv
  };

  TemporalVaeDecoderConfig cfg_;
  CausalConv3d post_quant_conv_;
  CausalConv3d conv_in_;  // Open-Sora's decoder.conv1
  std::vector<TemporalResBlock> res_blocks_;
  std::vector<Level> levels_;  // index = level, run from the last to the first
  Tensor norm_out_weight_, norm_out_bias_;
  CausalConv3d conv_out_;
};

}  // namespace ditserve
