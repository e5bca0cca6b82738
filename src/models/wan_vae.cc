#include "models/wan_vae.h"

#include <string>

#include "kernels/activation.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

constexpr std::array<int, 3> k3 = {3, 3, 3};
constexpr std::array<int, 3> k1 = {1, 1, 1};

const WanVAEConfig& validated(const WanVAEConfig& cfg) {
  cfg.validate();
  return cfg;
}

// Module prefixes of the decoder in each layout. Wan's `decoder.upsamples` is one flat
// nn.Sequential: per level num_res_blocks + 1 residual blocks, then the Resample.
struct Names {
  WanVaeLayout layout;
  std::int64_t res_per_level;

  bool original() const { return layout == WanVaeLayout::original; }
  std::string post_quant() const { return original() ? "conv2." : "post_quant_conv."; }
  std::string conv_in() const { return original() ? "decoder.conv1." : "decoder.conv_in."; }
  std::string mid_res(int j) const {
    return original() ? "decoder.middle." + std::to_string(2 * j) + "."
                      : "decoder.mid_block.resnets." + std::to_string(j) + ".";
  }
  std::string mid_attn() const {
    return original() ? "decoder.middle.1." : "decoder.mid_block.attentions.0.";
  }
  std::string up_res(std::size_t i, std::int64_t j) const {
    if (original())
      return "decoder.upsamples." +
             std::to_string(static_cast<std::int64_t>(i) * (res_per_level + 1) + j) + ".";
    return "decoder.up_blocks." + std::to_string(i) + ".resnets." + std::to_string(j) + ".";
  }
  std::string up_sample(std::size_t i) const {
    if (original())
      return "decoder.upsamples." +
             std::to_string(static_cast<std::int64_t>(i) * (res_per_level + 1) + res_per_level) +
             ".";
    return "decoder.up_blocks." + std::to_string(i) + ".upsamplers.0.";
  }
  std::string norm_out() const { return original() ? "decoder.head.0." : "decoder.norm_out."; }
  std::string conv_out() const { return original() ? "decoder.head.2." : "decoder.conv_out."; }
};

Names names(const WanVAEConfig& cfg, WanVaeLayout layout) {
  return {layout, cfg.num_res_blocks + 1};
}

std::size_t num_levels(const WanVAEConfig& cfg) { return cfg.dim_mult.size(); }

// dims[k] of Wan's Decoder3d: base * [dim_mult[-1]] + reversed(dim_mult).
std::int64_t dims(const WanVAEConfig& cfg, std::size_t k) {
  const std::size_t n = num_levels(cfg);
  return cfg.base_dim * (k == 0 ? cfg.dim_mult.back() : cfg.dim_mult[n - k]);
}
std::int64_t level_in(const WanVAEConfig& cfg, std::size_t i) {
  return i == 0 ? dims(cfg, 0) : dims(cfg, i) / 2;  // the previous Resample halved them
}
std::int64_t level_out(const WanVAEConfig& cfg, std::size_t i) { return dims(cfg, i + 1); }
bool has_upsample(const WanVAEConfig& cfg, std::size_t i) { return i + 1 < num_levels(cfg); }
bool temporal_upsample(const WanVAEConfig& cfg, std::size_t i) {
  return cfg.temporal_downsample[num_levels(cfg) - 2 - i];  // temperal_downsample[::-1][i]
}

// `values` as a [size] f32 tensor on be's device.
Tensor device_vector(Backend& be, const std::vector<float>& values) {
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  return transfer(*host, Tensor::from_vector(values, {static_cast<std::int64_t>(values.size())}),
                  be);
}

}  // namespace

std::int64_t WanVAEConfig::spatial_factor() const {
  return std::int64_t{1} << (dim_mult.empty() ? 0 : dim_mult.size() - 1);
}

std::int64_t WanVAEConfig::time_factor() const {
  std::int64_t f = 1;
  for (const bool down : temporal_downsample) f *= down ? 2 : 1;
  return f;
}

void WanVAEConfig::validate() const {
  DITSERVE_CHECK(z_dim > 0, "Wan VAE: z_dim must be > 0, got ", z_dim);
  DITSERVE_CHECK(base_dim > 0, "Wan VAE: base_dim must be > 0, got ", base_dim);
  DITSERVE_CHECK(num_res_blocks >= 0, "Wan VAE: num_res_blocks must be >= 0, got ", num_res_blocks);
  DITSERVE_CHECK(dim_mult.size() >= 2, "Wan VAE: dim_mult needs at least 2 levels, got ",
                 dim_mult.size());
  DITSERVE_CHECK(temporal_downsample.size() + 1 == dim_mult.size(),
                 "Wan VAE: temporal_downsample needs ", dim_mult.size() - 1,
                 " entries (one per level transition), got ", temporal_downsample.size());
  for (std::size_t i = 0; i < dim_mult.size(); ++i) {
    DITSERVE_CHECK(dim_mult[i] > 0 && (base_dim * dim_mult[i]) % 2 == 0, "Wan VAE: dim_mult[", i,
                   "] = ", dim_mult[i], " must give an even, positive ",
                   "channel count with base_dim ", base_dim);
  }
  DITSERVE_CHECK(latents_mean.size() == static_cast<std::size_t>(z_dim) &&
                     latents_std.size() == static_cast<std::size_t>(z_dim),
                 "Wan VAE: latents_mean and latents_std need ", z_dim, " entries, got ",
                 latents_mean.size(), " and ", latents_std.size());
}

WanVAEConfig wan_vae_2_1() {
  WanVAEConfig cfg;
  cfg.latents_mean = {-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,  -0.1517, 1.5508,
                      0.4134,  -0.0715, 0.5517,  -0.3632, -0.1922, -0.9497, 0.2503,  -0.2921};
  cfg.latents_std = {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                     3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160};
  return cfg;
}

WanVAEConfig wan_vae_tiny() {
  WanVAEConfig cfg = wan_vae_2_1();
  cfg.base_dim = 8;
  cfg.num_res_blocks = 1;
  return cfg;
}

std::vector<ParamSpec> wan_vae_decoder_parameters(const WanVAEConfig& cfg, WanVaeLayout layout) {
  cfg.validate();
  const Names n = names(cfg, layout);
  std::vector<ParamSpec> specs;
  WanCausalConv3d::append_params(specs, n.post_quant(), cfg.z_dim, cfg.z_dim, k1);
  WanCausalConv3d::append_params(specs, n.conv_in(), cfg.z_dim, dims(cfg, 0), k3);
  WanResidualBlock::append_params(specs, n.mid_res(0), layout, dims(cfg, 0), dims(cfg, 0));
  WanAttentionBlock::append_params(specs, n.mid_attn(), dims(cfg, 0));
  WanResidualBlock::append_params(specs, n.mid_res(1), layout, dims(cfg, 0), dims(cfg, 0));
  for (std::size_t i = 0; i < num_levels(cfg); ++i) {
    std::int64_t in = level_in(cfg, i);
    for (std::int64_t j = 0; j <= cfg.num_res_blocks; ++j) {
      WanResidualBlock::append_params(specs, n.up_res(i, j), layout, in, level_out(cfg, i));
      in = level_out(cfg, i);
    }
    if (has_upsample(cfg, i))
      WanUpsample::append_params(specs, n.up_sample(i), in, temporal_upsample(cfg, i));
  }
  const std::int64_t last = level_out(cfg, num_levels(cfg) - 1);
  WanRmsNorm::append_params(specs, n.norm_out(), last, false);
  WanCausalConv3d::append_params(specs, n.conv_out(), last, 3, k3);
  return specs;
}

WanVaeLayout detect_wan_vae_layout(const WeightSource& weights) {
  if (weights.contains("post_quant_conv.weight")) return WanVaeLayout::diffusers;
  if (weights.contains("conv2.weight")) return WanVaeLayout::original;
  throw InvalidArgument("weights: " + weights.describe() +
                        " is not a Wan VAE checkpoint: it has neither 'conv2.weight' (Wan's "
                        "layout) nor 'post_quant_conv.weight' (diffusers' AutoencoderKLWan)");
}

std::int64_t wan_vae_latent_frames(const WanVAEConfig& cfg, std::int64_t frames) {
  const std::int64_t f = cfg.time_factor();
  DITSERVE_CHECK(frames >= 1 && (frames - 1) % f == 0, "frames: the Wan VAE decodes ", f,
                 "k+1 frames (1, ", f + 1, ", ", 2 * f + 1, ", ..., 81), got ", frames);
  return (frames - 1) / f + 1;
}

WanVAE::WanVAE(const WanVAEConfig& cfg, const WeightSource& weights, Backend& be, DType dtype)
    : cfg_(validated(cfg)),
      be_(be),
      dtype_(dtype),
      layout_(detect_wan_vae_layout(weights)),
      mean_(device_vector(be, cfg.latents_mean)),
      std_(device_vector(be, cfg.latents_std)),
      post_quant_conv_(WeightLoader(weights, be, dtype, names(cfg, layout_).post_quant()),
                       cfg.z_dim, cfg.z_dim, k1),
      conv_in_(WeightLoader(weights, be, dtype, names(cfg, layout_).conv_in()), cfg.z_dim,
               dims(cfg, 0), k3),
      norm_out_(WeightLoader(weights, be, dtype, names(cfg, layout_).norm_out()),
                level_out(cfg, num_levels(cfg) - 1), false),
      conv_out_(WeightLoader(weights, be, dtype, names(cfg, layout_).conv_out()),
                level_out(cfg, num_levels(cfg) - 1), 3, k3) {
  const Names n = names(cfg_, layout_);
  const WeightLoader root(weights, be, dtype);
  const std::int64_t d0 = dims(cfg_, 0);
  mid_res_.emplace_back(root.sub(n.mid_res(0)), layout_, d0, d0);
  mid_attn_.emplace_back(root.sub(n.mid_attn()), d0);
  mid_res_.emplace_back(root.sub(n.mid_res(1)), layout_, d0, d0);
  levels_.resize(num_levels(cfg_));
  for (std::size_t i = 0; i < levels_.size(); ++i) {
    std::int64_t in = level_in(cfg_, i);
    for (std::int64_t j = 0; j <= cfg_.num_res_blocks; ++j) {
      levels_[i].res_blocks.emplace_back(root.sub(n.up_res(i, j)), layout_, in, level_out(cfg_, i));
      in = level_out(cfg_, i);
    }
    if (has_upsample(cfg_, i))
      levels_[i].upsample.emplace_back(root.sub(n.up_sample(i)), in, temporal_upsample(cfg_, i));
  }
}

std::int64_t WanVAE::latent_frames(std::int64_t frames) const {
  return wan_vae_latent_frames(cfg_, frames);
}

Bands WanVAE::decode_chunk(SpatialShardContext& ctx, const Bands& x,
                          const BandCaches& caches) const {
  Bands h = conv_in_.forward(ctx, x, next_slots(caches));
  h = mid_res_[0].forward(ctx, h, caches);
  h = mid_attn_[0].forward(ctx, h);
  h = mid_res_[1].forward(ctx, h, caches);
  for (const Level& level : levels_) {
    for (const WanResidualBlock& block : level.res_blocks) h = block.forward(ctx, h, caches);
    if (!level.upsample.empty()) h = level.upsample.front().forward(ctx, h, caches);
  }
  h = ctx.map(h, [&](Backend& be, int m, const Tensor& band) {
    return silu(be, norm_out_.forward(ctx, m, band));
  });
  return conv_out_.forward(ctx, h, next_slots(caches));
}

Tensor WanVAE::prepare(const Tensor& latents) const {
  Tensor z = contiguous(be_, latents.permute({0, 2, 3, 4, 1}));  // [B, T', h, w, C]
  z = add(be_, mul(be_, z, std_), mean_);                        // Wan: z / (1 / std) + mean
  if (dtype_ != DType::f32) z = cast(be_, z, dtype_);
  return post_quant_conv_.forward(be_, z, nullptr);
}

Tensor WanVAE::decode_frames(const Tensor& x, bool chunked) const {
  SpatialShardContext ctx(be_);
  return decode_frames(ctx, Bands{x}, chunked).front();
}

Bands WanVAE::decode_frames(SpatialShardContext& ctx, const Bands& x, bool chunked) const {
  const Tensor& x0 = x.at(0);
  DITSERVE_CHECK(x0.dim() == 5 && x0.size(4) == cfg_.z_dim, "Wan VAE: x is ", x0.describe(),
                 "; expected channels-last [N, T', h, w, ", cfg_.z_dim, "]");
  if (!chunked) return decode_chunk(ctx, x, {});
  // One cache per band: each band's causal convs carry their own rows of the past frames.
  std::vector<TemporalCache> caches(static_cast<std::size_t>(ctx.size()));
  BandCaches band_caches;
  for (TemporalCache& cache : caches) band_caches.push_back(&cache);
  std::vector<Bands> parts;
  for (std::int64_t t = 0; t < x0.size(1); ++t) {
    for (TemporalCache& cache : caches) cache.rewind();
    parts.push_back(decode_chunk(ctx, ctx.map(x, [t](Backend& be, int, const Tensor& band) {
      return contiguous(be, band.narrow(1, t, 1));
    }), band_caches));
  }
  return ctx.map(parts.front(), [&](Backend& be, int m, const Tensor& first) {
    if (parts.size() == 1) return first;
    std::vector<Tensor> mine;
    for (const Bands& p : parts) mine.push_back(p[static_cast<std::size_t>(m)]);
    return concat(be, mine, 1);
  });
}

Tensor WanVAE::decode(const Tensor& latents, std::int64_t frames) {
  SpatialShardContext ctx(be_);
  return decode_patch_parallel(ctx, latents, frames);
}

Tensor WanVAE::decode_patch_parallel(SpatialShardContext& ctx, const Tensor& latents,
                                     std::int64_t frames) {
  DITSERVE_CHECK(latents.defined() && latents.dim() == 5 && latents.size(1) == cfg_.z_dim &&
                     latents.dtype() == DType::f32,
                 "latents: expected f32 [B, ", cfg_.z_dim, ", T', h, w], got ",
                 latents.defined() ? latents.describe() : std::string("no tensor"));
  DITSERVE_CHECK(latents.device() == be_.device(), "latents: ", latents.describe(),
                 " is not on the VAE's device ", be_.device().str());
  const std::int64_t expected = latent_frames(frames);
  DITSERVE_CHECK(latents.size(2) == expected, "latents: ", frames, " frames need ", expected,
                 " latent frames, got ", latents.describe());
  // [B, F, H_i, W, 3] per band; the post-quant conv is 1x1x1, so it runs before the split.
  Bands video = decode_frames(ctx, ctx.split(prepare(latents), 2), /*chunked=*/true);
  if (video.front().dtype() != DType::f32) {
    video = ctx.map(video, [](Backend& be, int, const Tensor& band) {
      return cast(be, band, DType::f32);
    });
  }
  Backend& out_be = ctx.backend(0);
  return contiguous(out_be, ctx.gather(video, 2).permute({0, 4, 1, 2, 3}));
}


std::vector<Tensor> WanVAE::loaded_parameters() const {
  std::vector<Tensor> out{mean_, std_};
  post_quant_conv_.append_tensors(out);
  conv_in_.append_tensors(out);
  for (const WanResidualBlock& block : mid_res_) block.append_tensors(out);
  for (const WanAttentionBlock& attention : mid_attn_) attention.append_tensors(out);
  for (const Level& level : levels_) {
    for (const WanResidualBlock& block : level.res_blocks) block.append_tensors(out);
    for (const WanUpsample& upsample : level.upsample) upsample.append_tensors(out);
  }
  norm_out_.append_tensors(out);
  conv_out_.append_tensors(out);
  return out;
}

}  // namespace ditserve
