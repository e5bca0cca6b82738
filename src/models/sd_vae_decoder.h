#pragma once
// The spatial half of Open-Sora 1.2's VAE decoder: the decoder of diffusers' AutoencoderKL
// (SDXL VAE layout; diffusers v0.27.2 `autoencoders/vae.py`, `resnet.py`,
// `attention_processor.py`), applied to each frame. Tensors are channels-last
// [N, H, W, C]; parameter names and shapes are diffusers' (PyTorch layout).

#include <cstdint>
#include <string>
#include <vector>

#include "models/weights.h"
#include "parallel/spatial_shards.h"

namespace ditserve {

struct SdVaeDecoderConfig {
  // Per level, finest first; the decoder runs them in reverse.
  std::vector<std::int64_t> block_out_channels{128, 256, 512, 512};
  std::int64_t layers_per_block = 2;  // each up block has layers_per_block + 1 resnets
  std::int64_t latent_channels = 4;
  std::int64_t out_channels = 3;
  int norm_groups = 32;
  float norm_eps = 1e-6f;

  std::int64_t spatial_factor() const;  // 2^(levels - 1)
  // Throws InvalidArgument naming the field that makes the config unusable.
  void validate() const;
};

// diffusers ResnetBlock2D without time embedding: GN -> SiLU -> conv3x3 -> GN -> SiLU ->
// conv3x3, plus a 1x1 `conv_shortcut` (with bias) when the channel count changes.
class SdResnetBlock {
 public:
  SdResnetBlock(const WeightLoader& w, std::int64_t in, std::int64_t out, int groups,
                float eps);
  static void append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                            std::int64_t in, std::int64_t out);
  // x [N, H, W, in] -> [N, H, W, out].
  Tensor forward(Backend& be, const Tensor& x) const;
  Bands forward(SpatialShardContext& ctx, const Bands& x) const;
  // Appends every parameter tensor, in a fixed order (VideoDecoder::loaded_parameters).
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  int groups_;
  float eps_;
  Tensor norm1_weight_, norm1_bias_, conv1_weight_, conv1_bias_;
  Tensor norm2_weight_, norm2_bias_, conv2_weight_, conv2_bias_;
  Tensor shortcut_weight_, shortcut_bias_;  // undefined when in == out
};

// The mid block's attention: x + to_out(attention(GN(x))) over the H·W positions of
// each image, one head of dimension C (scale C^-1/2), f32 softmax.
class SdMidAttention {
 public:
  SdMidAttention(const WeightLoader& w, std::int64_t channels, int groups, float eps);
  static void append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                            std::int64_t channels);
  // x [N, H, W, C] -> [N, H, W, C].
  Tensor forward(Backend& be, const Tensor& x) const;
  Bands forward(SpatialShardContext& ctx, const Bands& x) const;
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  int groups_;
  float eps_;
  Tensor norm_weight_, norm_bias_;
  Tensor qkv_weight_, qkv_bias_;  // to_q, to_k, to_v stacked: [3C, C], [3C]
  Tensor out_weight_, out_bias_;
};

// UpDecoderBlock2D: resnets, then (except on the last level) nearest x2 and a 3x3 conv.
class SdUpBlock {
 public:
  SdUpBlock(const WeightLoader& w, const SdVaeDecoderConfig& cfg, std::int64_t in,
            std::int64_t out, bool upsample);
  static void append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                            const SdVaeDecoderConfig& cfg, std::int64_t in, std::int64_t out,
                            bool upsample);
  // x [N, H, W, in] -> [N, 2H, 2W, out] (or [N, H, W, out] without upsampling).
  Tensor forward(Backend& be, const Tensor& x) const;
  Bands forward(SpatialShardContext& ctx, const Bands& x) const;
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  std::vector<SdResnetBlock> resnets_;
  Tensor upsample_weight_, upsample_bias_;  // undefined without upsampling
};

// AutoencoderKL's post_quant_conv followed by its Decoder.
//
// Every module also runs patch parallel: forward(ctx, bands) takes the activation as
// bands of rows (dim 1 of [N, H, W, C]) over ctx's members and returns the output's bands
// (parallel/spatial_shards.h). forward(be, x) is the same code on a one-device context.
class SdVaeDecoder {
 public:
  // `w` is rooted at the AutoencoderKL (Open-Sora: "spatial_vae.module.").
  SdVaeDecoder(const SdVaeDecoderConfig& cfg, const WeightLoader& w);
  static std::vector<ParamSpec> parameters(const SdVaeDecoderConfig& cfg,
                                           const std::string& prefix);

  // z [N, h, w, latent_channels], already divided by the scaling factor ->
  // [N, h·f, w·f, out_channels] with f = spatial_factor(); images in about [-1, 1].
  Tensor forward(Backend& be, const Tensor& z) const;
  Bands forward(SpatialShardContext& ctx, const Bands& z) const;
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  SdVaeDecoderConfig cfg_;
  Tensor post_quant_weight_, post_quant_bias_;
  Tensor conv_in_weight_, conv_in_bias_;
  std::vector<SdResnetBlock> mid_resnets_;  // two
  std::vector<SdMidAttention> mid_attention_;  // one
  std::vector<SdUpBlock> up_blocks_;
  Tensor norm_out_weight_, norm_out_bias_;
  Tensor conv_out_weight_, conv_out_bias_;
};

}  // namespace ditserve
