#include "models/temporal_vae_decoder.h"

#include "kernels/activation.h"
#include "kernels/conv.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "kernels/resample.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

constexpr std::array<int, 3> k3 = {3, 3, 3};
constexpr std::array<int, 3> k1 = {1, 1, 1};

void append_norm(std::vector<ParamSpec>& specs, const std::string& prefix, std::int64_t c) {
  specs.push_back({prefix + "weight", {c}, ParamInit::ones});
  specs.push_back({prefix + "bias", {c}, ParamInit::zeros});
}

std::string idx(std::size_t i) { return std::to_string(i); }

const TemporalVaeDecoderConfig& validated(const TemporalVaeDecoderConfig& cfg) {
  cfg.validate();
  return cfg;
}

// Channels of level i of the decoder.
std::int64_t level_channels(const TemporalVaeDecoderConfig& cfg, std::size_t i) {
  return cfg.filters * cfg.channel_multipliers[i];
}

Bands silu(SpatialShardContext& ctx, const Bands& x) {
  return ctx.map(x, [](Backend& be, int, const Tensor& t) { return silu(be, t); });
}

template <typename Module>
Tensor on_one_device(const Module& module, Backend& be, const Tensor& x) {
  SpatialShardContext ctx(be);
  return module.forward(ctx, Bands{x}).front();
}

}  // namespace

std::int64_t TemporalVaeDecoderConfig::time_factor() const {
  std::int64_t factor = 1;
  for (const bool down : temporal_downsample) factor *= down ? 2 : 1;
  return factor;
}

void TemporalVaeDecoderConfig::validate() const {
  DITSERVE_CHECK(channels > 0, "temporal VAE: channels must be > 0, got ", channels);
  DITSERVE_CHECK(filters > 0, "temporal VAE: filters must be > 0, got ", filters);
  DITSERVE_CHECK(num_res_blocks > 0, "temporal VAE: num_res_blocks must be > 0, got ",
                 num_res_blocks);
  DITSERVE_CHECK(!channel_multipliers.empty(), "temporal VAE: channel_multipliers is empty");
  DITSERVE_CHECK(temporal_downsample.size() + 1 == channel_multipliers.size(),
                 "temporal VAE: temporal_downsample needs ", channel_multipliers.size() - 1,
                 " entries (one per level transition), got ", temporal_downsample.size());
  DITSERVE_CHECK(norm_groups > 0, "temporal VAE: norm_groups must be > 0, got ", norm_groups);
  for (std::size_t i = 0; i < channel_multipliers.size(); ++i) {
    DITSERVE_CHECK(channel_multipliers[i] > 0 && level_channels(*this, i) % norm_groups == 0,
                   "temporal VAE: channel_multipliers[", i, "] gives ",
                   level_channels(*this, i), " channels, which ", norm_groups,
                   " norm_groups do not divide");
  }
}

// ---- CausalConv3d ---------------------------------------------------------------------

CausalConv3d::CausalConv3d(const WeightLoader& w, std::int64_t in, std::int64_t out,
                           std::array<int, 3> kernel, bool bias)
    : kernel_(kernel),
      weight_(w.load_conv("conv.weight", {out, in, kernel[0], kernel[1], kernel[2]})),
      bias_(bias ? w.load("conv.bias", {out}) : Tensor()) {
  DITSERVE_CHECK(kernel[1] % 2 == 1 && kernel[2] % 2 == 1,
                 "CausalConv3d: spatial kernel sizes must be odd, got ", kernel[1], "x",
                 kernel[2]);
}

void CausalConv3d::append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                                 std::int64_t in, std::int64_t out, std::array<int, 3> kernel,
                                 bool bias) {
  specs.push_back({prefix + "conv.weight", {out, in, kernel[0], kernel[1], kernel[2]}});
  if (bias) specs.push_back({prefix + "conv.bias", {out}, ParamInit::zeros});
}

Tensor CausalConv3d::forward(Backend& be, const Tensor& x) const {
  return on_one_device(*this, be, x);
}

// Time is padded on each band alone (bands hold all frames); rows along H come from the
// neighbouring bands.
Bands CausalConv3d::forward(SpatialShardContext& ctx, const Bands& x) const {
  DITSERVE_CHECK(!x.empty() && x[0].dim() == 5 && x[0].size(4) == weight_.size(4),
                 "CausalConv3d: x is ", x.empty() ? std::string("empty") : x[0].describe(),
                 "; expected [N, T, H, W, ", weight_.size(4), "]");
  const std::int64_t time_pad = kernel_[0] - 1;
  const Bands padded = time_pad == 0 ? x : ctx.map(x, [&](Backend& be, int, const Tensor& t) {
    return pad(be, t, {{0, 0}, {time_pad, 0}, {0, 0}, {0, 0}, {0, 0}});
  });
  return ctx.halo_conv(padded, 2, kernel_[1] / 2,
                       [&](Backend& be, int m, const Tensor& in, int row_pad) {
                         return conv3d(be, in, ctx.param(weight_, m), ctx.param(bias_, m),
                                       {1, 1, 1}, {0, row_pad, kernel_[2] / 2});
                       });
}

void CausalConv3d::append_tensors(std::vector<Tensor>& out) const {
  out.insert(out.end(), {weight_, bias_});
}

// ---- TemporalResBlock ------------------------------------------------------------------

TemporalResBlock::TemporalResBlock(const WeightLoader& w, std::int64_t in, std::int64_t out,
                                   int groups, float eps)
    : groups_(groups),
      eps_(eps),
      norm1_weight_(w.load("norm1.weight", {in})),
      norm1_bias_(w.load("norm1.bias", {in})),
      norm2_weight_(w.load("norm2.weight", {out})),
      norm2_bias_(w.load("norm2.bias", {out})),
      conv1_(w.sub("conv1."), in, out, k3, /*bias=*/false),
      conv2_(w.sub("conv2."), out, out, k3, /*bias=*/false) {
  if (in != out) shortcut_.emplace_back(w.sub("conv3."), in, out, k1, /*bias=*/false);
}

void TemporalResBlock::append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                                     std::int64_t in, std::int64_t out) {
  append_norm(specs, prefix + "norm1.", in);
  CausalConv3d::append_params(specs, prefix + "conv1.", in, out, k3, false);
  append_norm(specs, prefix + "norm2.", out);
  CausalConv3d::append_params(specs, prefix + "conv2.", out, out, k3, false);
  if (in != out) CausalConv3d::append_params(specs, prefix + "conv3.", in, out, k1, false);
}

Tensor TemporalResBlock::forward(Backend& be, const Tensor& x) const {
  return on_one_device(*this, be, x);
}

Bands TemporalResBlock::forward(SpatialShardContext& ctx, const Bands& x) const {
  Bands h = silu(ctx, ctx.group_norm(x, groups_, norm1_weight_, norm1_bias_, eps_));
  h = conv1_.forward(ctx, h);
  h = silu(ctx, ctx.group_norm(h, groups_, norm2_weight_, norm2_bias_, eps_));
  h = conv2_.forward(ctx, h);
  const Bands residual = shortcut_.empty() ? x : shortcut_.front().forward(ctx, x);
  return ctx.zip(h, residual, [](Backend& be, int, const Tensor& a, const Tensor& b) {
    return add(be, a, b);
  });
}

void TemporalResBlock::append_tensors(std::vector<Tensor>& out) const {
  out.insert(out.end(), {norm1_weight_, norm1_bias_, norm2_weight_, norm2_bias_});
  conv1_.append_tensors(out);
  conv2_.append_tensors(out);
  for (const CausalConv3d& conv : shortcut_) conv.append_tensors(out);
}

// ---- depth_to_time ---------------------------------------------------------------------

Tensor depth_to_time(Backend& be, const Tensor& x, std::int64_t factor) {
  DITSERVE_CHECK(factor >= 1, "depth_to_time: factor must be >= 1, got ", factor);
  DITSERVE_CHECK(x.dim() == 5 && x.size(4) % factor == 0, "depth_to_time: x is ",
                 x.describe(), "; expected [N, T, H, W, C*", factor, "]");
  if (factor == 1) return x;
  const std::int64_t n = x.size(0), t = x.size(1), h = x.size(2), w = x.size(3);
  const std::int64_t c = x.size(4) / factor;
  const Tensor split = contiguous(be, x).view({n, t, h, w, c, factor});
  return contiguous(be, split.permute({0, 1, 5, 2, 3, 4})).view({n, t * factor, h, w, c});
}

// ---- TemporalVaeDecoder ----------------------------------------------------------------

std::vector<ParamSpec> TemporalVaeDecoder::parameters(const TemporalVaeDecoderConfig& cfg,
                                                      const std::string& prefix) {
  cfg.validate();
  std::vector<ParamSpec> specs;
  CausalConv3d::append_params(specs, prefix + "post_quant_conv.", cfg.channels, cfg.channels,
                              k1, true);
  const std::string dec = prefix + "decoder.";
  const std::size_t levels = cfg.channel_multipliers.size();
  std::int64_t prev = level_channels(cfg, levels - 1);
  CausalConv3d::append_params(specs, dec + "conv1.", cfg.channels, prev, k3, true);
  for (std::int64_t j = 0; j < cfg.num_res_blocks; ++j) {
    TemporalResBlock::append_params(specs, dec + "res_blocks." + idx(j) + ".", prev, prev);
  }
  for (std::size_t i = levels; i-- > 0;) {
    const std::int64_t out = level_channels(cfg, i);
    for (std::int64_t j = 0; j < cfg.num_res_blocks; ++j) {
      TemporalResBlock::append_params(
          specs, dec + "block_res_blocks." + idx(i) + "." + idx(j) + ".", prev, out);
      prev = out;
    }
    if (i > 0 && cfg.temporal_downsample[i - 1]) {
      CausalConv3d::append_params(specs, dec + "conv_blocks." + idx(i - 1) + ".", prev,
                                  prev * 2, k3, true);
    }
  }
  append_norm(specs, dec + "norm1.", prev);
  CausalConv3d::append_params(specs, dec + "conv_out.", prev, cfg.channels, k3, true);
  return specs;
}

TemporalVaeDecoder::TemporalVaeDecoder(const TemporalVaeDecoderConfig& cfg,
                                       const WeightLoader& w)
    : cfg_(validated(cfg)),
      post_quant_conv_(w.sub("post_quant_conv."), cfg.channels, cfg.channels, k1, true),
      conv_in_(w.sub("decoder.conv1."), cfg.channels,
               level_channels(cfg, cfg.channel_multipliers.size() - 1), k3, true),
      norm_out_weight_(w.load("decoder.norm1.weight", {level_channels(cfg, 0)})),
      norm_out_bias_(w.load("decoder.norm1.bias", {level_channels(cfg, 0)})),
      conv_out_(w.sub("decoder.conv_out."), level_channels(cfg, 0), cfg.channels, k3, true) {
  const WeightLoader dec = w.sub("decoder.");
  const std::size_t levels = cfg.channel_multipliers.size();
  std::int64_t prev = level_channels(cfg, levels - 1);
  for (std::int64_t j = 0; j < cfg.num_res_blocks; ++j) {
    res_blocks_.emplace_back(dec.sub("res_blocks." + idx(j) + "."), prev, prev,
                             cfg.norm_groups, cfg.norm_eps);
  }
  levels_.resize(levels);
  for (std::size_t i = levels; i-- > 0;) {
    const std::int64_t out = level_channels(cfg, i);
    for (std::int64_t j = 0; j < cfg.num_res_blocks; ++j) {
      levels_[i].res_blocks.emplace_back(
          dec.sub("block_res_blocks." + idx(i) + "." + idx(j) + "."), prev, out,
          cfg.norm_groups, cfg.norm_eps);
      prev = out;
    }
    if (i > 0 && cfg.temporal_downsample[i - 1]) {
      levels_[i].upsample.emplace_back(dec.sub("conv_blocks." + idx(i - 1) + "."), prev,
                                       prev * 2, k3, true);
    }
  }
}

Tensor TemporalVaeDecoder::forward(Backend& be, const Tensor& z) const {
  return on_one_device(*this, be, z);
}

Bands TemporalVaeDecoder::forward(SpatialShardContext& ctx, const Bands& z) const {
  DITSERVE_CHECK(!z.empty() && z[0].dim() == 5 && z[0].size(4) == cfg_.channels,
                 "temporal VAE decoder: z is ", z.empty() ? std::string("empty") : z[0].describe(),
                 "; expected [N, T, h, w, ", cfg_.channels, "]");
  Bands x = conv_in_.forward(ctx, post_quant_conv_.forward(ctx, z));
  for (const TemporalResBlock& block : res_blocks_) x = block.forward(ctx, x);
  for (std::size_t i = levels_.size(); i-- > 0;) {
    for (const TemporalResBlock& block : levels_[i].res_blocks) x = block.forward(ctx, x);
    if (!levels_[i].upsample.empty()) {
      x = ctx.map(levels_[i].upsample.front().forward(ctx, x),
                  [](Backend& be, int, const Tensor& t) { return depth_to_time(be, t, 2); });
    }
  }
  x = silu(ctx, ctx.group_norm(x, cfg_.norm_groups, norm_out_weight_, norm_out_bias_,
                               cfg_.norm_eps));
  return conv_out_.forward(ctx, x);
}


void TemporalVaeDecoder::append_tensors(std::vector<Tensor>& out) const {
  post_quant_conv_.append_tensors(out);
  conv_in_.append_tensors(out);
  for (const TemporalResBlock& block : res_blocks_) block.append_tensors(out);
  for (const Level& level : levels_) {
    for (const TemporalResBlock& block : level.res_blocks) block.append_tensors(out);
    for (const CausalConv3d& conv : level.upsample) conv.append_tensors(out);
  }
  out.insert(out.end(), {norm_out_weight_, norm_out_bias_});
  conv_out_.append_tensors(out);
}

}  // namespace ditserve
