#pragma once
// The building blocks of Wan 2.1's video VAE decoder (Wan-Video/Wan2.1 wan/modules/vae.py;
// diffusers' autoencoder_kl_wan.py): causal 3D convolutions that can run one chunk of
// frames at a time carrying the last frames of their input, RMS_norm, residual blocks,
// the per-frame attention block and the 2x upsampling Resample. Tensors are channels-last,
// [N, T, H, W, C].
//
// Chunked decoding: every causal conv keeps the last kCacheFrames frames of its input
// stream in a TemporalCache slot, so decoding frame by frame gives what one pass over the
// whole sequence gives. Wan's upsample3d has one exception, kept here: its time_conv
// skips the very first chunk (Wan marks that slot 'Rep'), i.e. over a whole sequence the
// first frame is not doubled in time and the rest go through a causal conv that never
// sees it. That is why T latent frames decode to 4(T-1)+1 video frames.
//
// Patch parallelism (parallel/spatial_shards.h): every block also runs on bands of rows
// (dim 2 of [N, T, H, W, C]). Only the spatial convolutions look across a band's edge
// (halo rows); RMS_norm is per position over channels and needs no shared statistics;
// the attention block gathers every band's keys and values of each frame; 2x nearest
// upsampling doubles every band alike, so the bands stay aligned. The time padding and
// the causal caches stay per band: each band caches its own rows of the last frames.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "models/weights.h"
#include "parallel/spatial_shards.h"

namespace ditserve {

// The two public tensor-name layouts of the same weights.
enum class WanVaeLayout {
  original,   // Wan 2.1's Wan2.1_VAE.pth: conv2.*, decoder.conv1.*, decoder.middle.*, ...
  diffusers,  // AutoencoderKLWan: post_quant_conv.*, decoder.conv_in.*, decoder.mid_block.*
};
const char* wan_vae_layout_name(WanVaeLayout layout);

// Frames of input a 3-tap causal conv needs from earlier chunks (Wan's CACHE_T).
inline constexpr std::int64_t kCacheFrames = 2;

// The per-decode state of every causal conv, visited in the same order for each chunk.
class TemporalCache {
 public:
  struct Slot {
    Tensor frames;      // the last <= kCacheFrames input frames seen so far
    bool seen = false;  // a chunk has passed (upsample3d's time_conv skips the first)
  };
  // The next conv's slot; the first chunk creates them.
  Slot& next();
  // Call before each chunk.
  void rewind() { cursor_ = 0; }

 private:
  std::vector<Slot> slots_;
  std::size_t cursor_ = 0;
};

// One TemporalCache per band of a patch-parallel decode (each holds its band's rows of
// the cached frames); empty when the whole sequence goes through in one pass.
using BandCaches = std::vector<TemporalCache*>;
// The next slot of every band's cache (empty for empty caches).
std::vector<TemporalCache::Slot*> next_slots(const BandCaches& caches);

// Conv3d padded causally in time (kt - 1 frames in front, from the cache or zeros) and by
// k/2 on each side in space; stride 1. Weights `<prefix>weight` [out, in, kt, kh, kw] and
// `<prefix>bias` [out].
class WanCausalConv3d {
 public:
  WanCausalConv3d(const WeightLoader& w, std::int64_t in, std::int64_t out,
                  std::array<int, 3> kernel);
  static void append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                            std::int64_t in, std::int64_t out, std::array<int, 3> kernel);
  // x [N, T, H, W, in] -> [N, T, H, W, out]. slot == nullptr: x is the whole sequence;
  // else x continues the frames the slot holds, which it then updates.
  Tensor forward(Backend& be, const Tensor& x, TemporalCache::Slot* slot) const;
  // The same on bands of rows, slots[i] for band i (or none: whole sequence). The time
  // padding is per band; the spatial padding comes from the neighbouring bands.
  Bands forward(SpatialShardContext& ctx, const Bands& x,
                const std::vector<TemporalCache::Slot*>& slots) const;
  std::int64_t time_kernel() const { return kernel_[0]; }
  // Appends every parameter tensor, in a fixed order (VideoDecoder::loaded_parameters).
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  std::array<int, 3> kernel_;
  Tensor weight_;  // channels-last [out, kt, kh, kw, in]
  Tensor bias_;
};

// Wan's RMS_norm: F.normalize over channels * sqrt(C) * gamma = x / rms(x) * gamma.
// gamma is stored [C, 1, 1, 1] (video) or [C, 1, 1] (the attention's per-frame norm).
class WanRmsNorm {
 public:
  WanRmsNorm(const WeightLoader& w, std::int64_t channels, bool images);
  static void append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                            std::int64_t channels, bool images);
  Tensor forward(Backend& be, const Tensor& x) const;
  // x on ctx's member `member` (per position, so a band needs nothing from the others).
  Tensor forward(SpatialShardContext& ctx, int member, const Tensor& x) const;
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  Tensor gamma_;  // [C]
};

// RMS_norm -> SiLU -> conv3³ -> RMS_norm -> SiLU -> conv3³, plus a 1×1×1 shortcut conv
// when in != out. `w` is rooted at the block (decoder.middle.0. / ...resnets.0.).
class WanResidualBlock {
 public:
  WanResidualBlock(const WeightLoader& w, WanVaeLayout layout, std::int64_t in, std::int64_t out);
  static void append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                            WanVaeLayout layout, std::int64_t in, std::int64_t out);
  Bands forward(SpatialShardContext& ctx, const Bands& x, const BandCaches& caches) const;
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  WanRmsNorm norm1_, norm2_;
  WanCausalConv3d conv1_, conv2_;
  std::vector<WanCausalConv3d> shortcut_;  // empty or one 1×1×1 conv
};

// Single-head self-attention over the positions of each frame (norm, to_qkv, proj: 1×1
// convs), added to its input. Same names in both layouts.
class WanAttentionBlock {
 public:
  WanAttentionBlock(const WeightLoader& w, std::int64_t channels);
  static void append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                            std::int64_t channels);
  // Each band's queries attend to the keys and values of all bands of the same frame.
  Bands forward(SpatialShardContext& ctx, const Bands& x) const;
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  WanRmsNorm norm_;
  Tensor qkv_weight_, qkv_bias_;    // [3C, C], [3C]
  Tensor proj_weight_, proj_bias_;  // [C, C], [C]
};

// Resample upsample2d / upsample3d: (upsample3d: a (3,1,1) causal time_conv to 2C
// channels, split into two frames per frame) then per frame 2x nearest upsampling and a
// 3×3 conv to C/2 channels. Names `resample.1.*`, `time_conv.*` in both layouts.
class WanUpsample {
 public:
  WanUpsample(const WeightLoader& w, std::int64_t channels, bool temporal);
  static void append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                            std::int64_t channels, bool temporal);
  // x [N, T, H, W, C] -> [N, T', 2H, 2W, C/2]; T' = T without time doubling, else 2T, or
  // 2T - 1 for a whole sequence (cache == nullptr) and for the first chunk T (see top).
  // (On bands: the time_conv is 1x1 in space and the 3x3 conv exchanges one halo row.)
  Bands forward(SpatialShardContext& ctx, const Bands& x, const BandCaches& caches) const;
  void append_tensors(std::vector<Tensor>& out) const;

 private:
  Bands time_double(SpatialShardContext& ctx, const Bands& x,
                    const std::vector<TemporalCache::Slot*>& slots) const;

  std::int64_t channels_;
  Tensor conv_weight_, conv_bias_;          // channels-last [C/2, 3, 3, C], [C/2]
  std::vector<WanCausalConv3d> time_conv_;  // upsample3d only
};

}  // namespace ditserve
