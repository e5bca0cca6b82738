#include "models/sd_vae_decoder.h"

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/resample.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

void append_norm(std::vector<ParamSpec>& specs, const std::string& prefix, std::int64_t c) {
  specs.push_back({prefix + "weight", {c}, ParamInit::ones});
  specs.push_back({prefix + "bias", {c}, ParamInit::zeros});
}

void append_conv(std::vector<ParamSpec>& specs, const std::string& prefix, std::int64_t in,
                 std::int64_t out, std::int64_t k) {
  specs.push_back({prefix + "weight", {out, in, k, k}});
  specs.push_back({prefix + "bias", {out}, ParamInit::zeros});
}

void append_linear(std::vector<ParamSpec>& specs, const std::string& prefix, std::int64_t in,
                   std::int64_t out) {
  specs.push_back({prefix + "weight", {out, in}});
  specs.push_back({prefix + "bias", {out}, ParamInit::zeros});
}

std::string idx(std::size_t i) { return std::to_string(i); }

const SdVaeDecoderConfig& validated(const SdVaeDecoderConfig& cfg) {
  cfg.validate();
  return cfg;
}

// 3x3 convs pad by one, 1x1 convs not at all ("same" output size, stride 1); on bands,
// a 3x3 conv first takes one halo row from each neighbour.
Bands conv_same(SpatialShardContext& ctx, const Bands& x, const Tensor& w, const Tensor& b) {
  const int pad = static_cast<int>(w.size(1) / 2);
  return ctx.halo_conv(x, 1, pad, [&](Backend& be, int m, const Tensor& in, int row_pad) {
    return conv2d(be, in, ctx.param(w, m), ctx.param(b, m), {1, 1}, {row_pad, pad});
  });
}

Bands silu(SpatialShardContext& ctx, const Bands& x) {
  return ctx.map(x, [](Backend& be, int, const Tensor& t) { return silu(be, t); });
}

Bands add(SpatialShardContext& ctx, const Bands& a, const Bands& b) {
  return ctx.zip(a, b, [](Backend& be, int, const Tensor& x, const Tensor& y) {
    return add(be, x, y);
  });
}

// The one-device form of a module's band forward.
template <typename Module>
Tensor on_one_device(const Module& module, Backend& be, const Tensor& x) {
  SpatialShardContext ctx(be);
  return module.forward(ctx, Bands{x}).front();
}

// Channels of up block i, which runs the levels in reverse.
std::int64_t up_channels(const SdVaeDecoderConfig& cfg, std::size_t i) {
  return cfg.block_out_channels[cfg.block_out_channels.size() - 1 - i];
}

}  // namespace

std::int64_t SdVaeDecoderConfig::spatial_factor() const {
  return std::int64_t{1} << (block_out_channels.size() - 1);
}

void SdVaeDecoderConfig::validate() const {
  DITSERVE_CHECK(!block_out_channels.empty(), "SD VAE decoder: block_out_channels is empty");
  DITSERVE_CHECK(layers_per_block >= 0, "SD VAE decoder: layers_per_block must be >= 0, got ",
                 layers_per_block);
  DITSERVE_CHECK(latent_channels > 0 && out_channels > 0,
                 "SD VAE decoder: latent_channels and out_channels must be > 0");
  DITSERVE_CHECK(norm_groups > 0, "SD VAE decoder: norm_groups must be > 0, got ", norm_groups);
  for (std::size_t i = 0; i < block_out_channels.size(); ++i) {
    DITSERVE_CHECK(block_out_channels[i] > 0 && block_out_channels[i] % norm_groups == 0,
                   "SD VAE decoder: block_out_channels[", i, "] = ", block_out_channels[i],
                   " is not a positive multiple of norm_groups = ", norm_groups);
  }
}

// ---- SdResnetBlock ---------------------------------------------------------------------

SdResnetBlock::SdResnetBlock(const WeightLoader& w, std::int64_t in, std::int64_t out,
                             int groups, float eps)
    : groups_(groups),
      eps_(eps),
      norm1_weight_(w.load("norm1.weight", {in})),
      norm1_bias_(w.load("norm1.bias", {in})),
      conv1_weight_(w.load_conv("conv1.weight", {out, in, 3, 3})),
      conv1_bias_(w.load("conv1.bias", {out})),
      norm2_weight_(w.load("norm2.weight", {out})),
      norm2_bias_(w.load("norm2.bias", {out})),
      conv2_weight_(w.load_conv("conv2.weight", {out, out, 3, 3})),
      conv2_bias_(w.load("conv2.bias", {out})) {
  if (in != out) {
    shortcut_weight_ = w.load_conv("conv_shortcut.weight", {out, in, 1, 1});
    shortcut_bias_ = w.load("conv_shortcut.bias", {out});
  }
}

void SdResnetBlock::append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                                  std::int64_t in, std::int64_t out) {
  append_norm(specs, prefix + "norm1.", in);
  append_conv(specs, prefix + "conv1.", in, out, 3);
  append_norm(specs, prefix + "norm2.", out);
  append_conv(specs, prefix + "conv2.", out, out, 3);
  if (in != out) append_conv(specs, prefix + "conv_shortcut.", in, out, 1);
}

Tensor SdResnetBlock::forward(Backend& be, const Tensor& x) const {
  return on_one_device(*this, be, x);
}

Bands SdResnetBlock::forward(SpatialShardContext& ctx, const Bands& x) const {
  DITSERVE_CHECK(!x.empty() && x[0].dim() == 4 && x[0].size(3) == norm1_weight_.size(0),
                 "SD resnet block: x is ", x.empty() ? std::string("empty") : x[0].describe(),
                 "; expected [N, H, W, ", norm1_weight_.size(0), "]");
  Bands h = silu(ctx, ctx.group_norm(x, groups_, norm1_weight_, norm1_bias_, eps_));
  h = conv_same(ctx, h, conv1_weight_, conv1_bias_);
  h = silu(ctx, ctx.group_norm(h, groups_, norm2_weight_, norm2_bias_, eps_));
  h = conv_same(ctx, h, conv2_weight_, conv2_bias_);
  const Bands residual =
      shortcut_weight_.defined() ? conv_same(ctx, x, shortcut_weight_, shortcut_bias_) : x;
  return add(ctx, residual, h);
}

void SdResnetBlock::append_tensors(std::vector<Tensor>& out) const {
  out.insert(out.end(), {norm1_weight_, norm1_bias_, conv1_weight_, conv1_bias_, norm2_weight_,
                         norm2_bias_, conv2_weight_, conv2_bias_, shortcut_weight_,
                         shortcut_bias_});
}

// ---- SdMidAttention --------------------------------------------------------------------

SdMidAttention::SdMidAttention(const WeightLoader& w, std::int64_t channels, int groups,
                               float eps)
    : groups_(groups),
      eps_(eps),
      norm_weight_(w.load("group_norm.weight", {channels})),
      norm_bias_(w.load("group_norm.bias", {channels})),
      out_weight_(w.load("to_out.0.weight", {channels, channels})),
      out_bias_(w.load("to_out.0.bias", {channels})) {
  Backend& be = w.backend();
  std::vector<Tensor> weights, biases;
  for (const char* name : {"to_q.", "to_k.", "to_v."}) {
    weights.push_back(w.load(std::string(name) + "weight", {channels, channels}));
    biases.push_back(w.load(std::string(name) + "bias", {channels}));
  }
  qkv_weight_ = concat(be, weights, 0);
  qkv_bias_ = concat(be, biases, 0);
}

void SdMidAttention::append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                                   std::int64_t channels) {
  append_norm(specs, prefix + "group_norm.", channels);
  for (const char* name : {"to_q.", "to_k.", "to_v.", "to_out.0."}) {
    append_linear(specs, prefix + name, channels, channels);
  }
}

Tensor SdMidAttention::forward(Backend& be, const Tensor& x) const {
  return on_one_device(*this, be, x);
}

// On bands, each member's queries attend over the keys and values of all bands.
Bands SdMidAttention::forward(SpatialShardContext& ctx, const Bands& x) const {
  const std::int64_t c = norm_weight_.size(0);
  DITSERVE_CHECK(!x.empty() && x[0].dim() == 4 && x[0].size(3) == c,
                 "SD mid-block attention: x is ",
                 x.empty() ? std::string("empty") : x[0].describe(), "; expected [N, H, W, ", c,
                 "]");
  const Bands normed = ctx.group_norm(x, groups_, norm_weight_, norm_bias_, eps_);
  const Bands qkv = ctx.map(normed, [&](Backend& be, int m, const Tensor& t) {
    return linear(be, t.view({t.size(0), t.size(1) * t.size(2), c}), ctx.param(qkv_weight_, m),
                  ctx.param(qkv_bias_, m));
  });
  const auto part = [&](std::int64_t index) {  // [N, S, 1 head, C]
    return ctx.map(qkv, [&](Backend&, int, const Tensor& t) {
      return t.narrow(2, index * c, c).unsqueeze(2);
    });
  };
  const Bands attended = ctx.attention(part(0), part(1), part(2));
  return ctx.zip(x, attended, [&](Backend& be, int m, const Tensor& xi, const Tensor& a) {
    const std::int64_t n = xi.size(0), h = xi.size(1), w = xi.size(2);
    const Tensor projected =
        linear(be, a.view({n, h * w, c}), ctx.param(out_weight_, m), ctx.param(out_bias_, m));
    return add(be, xi, projected.view({n, h, w, c}));
  });
}

void SdMidAttention::append_tensors(std::vector<Tensor>& out) const {
  out.insert(out.end(),
             {norm_weight_, norm_bias_, qkv_weight_, qkv_bias_, out_weight_, out_bias_});
}

// ---- SdUpBlock -------------------------------------------------------------------------

SdUpBlock::SdUpBlock(const WeightLoader& w, const SdVaeDecoderConfig& cfg, std::int64_t in,
                     std::int64_t out, bool upsample) {
  for (std::int64_t j = 0; j <= cfg.layers_per_block; ++j) {
    resnets_.emplace_back(w.sub("resnets." + idx(j) + "."), j == 0 ? in : out, out,
                          cfg.norm_groups, cfg.norm_eps);
  }
  if (upsample) {
    upsample_weight_ = w.load_conv("upsamplers.0.conv.weight", {out, out, 3, 3});
    upsample_bias_ = w.load("upsamplers.0.conv.bias", {out});
  }
}

void SdUpBlock::append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                              const SdVaeDecoderConfig& cfg, std::int64_t in, std::int64_t out,
                              bool upsample) {
  for (std::int64_t j = 0; j <= cfg.layers_per_block; ++j) {
    SdResnetBlock::append_params(specs, prefix + "resnets." + idx(j) + ".", j == 0 ? in : out,
                                 out);
  }
  if (upsample) append_conv(specs, prefix + "upsamplers.0.conv.", out, out, 3);
}

Tensor SdUpBlock::forward(Backend& be, const Tensor& x) const {
  return on_one_device(*this, be, x);
}

// Nearest x2 doubles every band, so the bands stay aligned with the image's rows.
Bands SdUpBlock::forward(SpatialShardContext& ctx, const Bands& x) const {
  Bands h = x;
  for (const SdResnetBlock& resnet : resnets_) h = resnet.forward(ctx, h);
  if (!upsample_weight_.defined()) return h;
  const Bands up = ctx.map(h, [](Backend& be, int, const Tensor& t) {
    return upsample_nearest(be, t, {2, 2});
  });
  return conv_same(ctx, up, upsample_weight_, upsample_bias_);
}

void SdUpBlock::append_tensors(std::vector<Tensor>& out) const {
  for (const SdResnetBlock& resnet : resnets_) resnet.append_tensors(out);
  out.insert(out.end(), {upsample_weight_, upsample_bias_});
}

// ---- SdVaeDecoder ----------------------------------------------------------------------

std::vector<ParamSpec> SdVaeDecoder::parameters(const SdVaeDecoderConfig& cfg,
                                                const std::string& prefix) {
  cfg.validate();
  std::vector<ParamSpec> specs;
  append_conv(specs, prefix + "post_quant_conv.", cfg.latent_channels, cfg.latent_channels, 1);
  const std::string dec = prefix + "decoder.";
  const std::int64_t mid = cfg.block_out_channels.back();
  append_conv(specs, dec + "conv_in.", cfg.latent_channels, mid, 3);
  SdResnetBlock::append_params(specs, dec + "mid_block.resnets.0.", mid, mid);
  SdMidAttention::append_params(specs, dec + "mid_block.attentions.0.", mid);
  SdResnetBlock::append_params(specs, dec + "mid_block.resnets.1.", mid, mid);
  const std::size_t levels = cfg.block_out_channels.size();
  std::int64_t prev = mid;
  for (std::size_t i = 0; i < levels; ++i) {
    const std::int64_t out = up_channels(cfg, i);
    SdUpBlock::append_params(specs, dec + "up_blocks." + idx(i) + ".", cfg, prev, out,
                             i + 1 < levels);
    prev = out;
  }
  append_norm(specs, dec + "conv_norm_out.", prev);
  append_conv(specs, dec + "conv_out.", prev, cfg.out_channels, 3);
  return specs;
}

SdVaeDecoder::SdVaeDecoder(const SdVaeDecoderConfig& cfg, const WeightLoader& w)
    : cfg_(validated(cfg)),
      post_quant_weight_(w.load_conv("post_quant_conv.weight",
                                     {cfg.latent_channels, cfg.latent_channels, 1, 1})),
      post_quant_bias_(w.load("post_quant_conv.bias", {cfg.latent_channels})) {
  const WeightLoader dec = w.sub("decoder.");
  const std::int64_t mid = cfg.block_out_channels.back();
  const std::int64_t first = cfg.block_out_channels.front();
  conv_in_weight_ = dec.load_conv("conv_in.weight", {mid, cfg.latent_channels, 3, 3});
  conv_in_bias_ = dec.load("conv_in.bias", {mid});
  mid_resnets_.emplace_back(dec.sub("mid_block.resnets.0."), mid, mid, cfg.norm_groups,
                            cfg.norm_eps);
  mid_attention_.emplace_back(dec.sub("mid_block.attentions.0."), mid, cfg.norm_groups,
                              cfg.norm_eps);
  mid_resnets_.emplace_back(dec.sub("mid_block.resnets.1."), mid, mid, cfg.norm_groups,
                            cfg.norm_eps);
  const std::size_t levels = cfg.block_out_channels.size();
  std::int64_t prev = mid;
  for (std::size_t i = 0; i < levels; ++i) {
    const std::int64_t out = up_channels(cfg, i);
    up_blocks_.emplace_back(dec.sub("up_blocks." + idx(i) + "."), cfg, prev, out,
                            i + 1 < levels);
    prev = out;
  }
  norm_out_weight_ = dec.load("conv_norm_out.weight", {first});
  norm_out_bias_ = dec.load("conv_norm_out.bias", {first});
  conv_out_weight_ = dec.load_conv("conv_out.weight", {cfg.out_channels, first, 3, 3});
  conv_out_bias_ = dec.load("conv_out.bias", {cfg.out_channels});
}

Tensor SdVaeDecoder::forward(Backend& be, const Tensor& z) const {
  return on_one_device(*this, be, z);
}

Bands SdVaeDecoder::forward(SpatialShardContext& ctx, const Bands& z) const {
  DITSERVE_CHECK(!z.empty() && z[0].dim() == 4 && z[0].size(3) == cfg_.latent_channels,
                 "SD VAE decoder: z is ", z.empty() ? std::string("empty") : z[0].describe(),
                 "; expected [N, h, w, ", cfg_.latent_channels, "]");
  Bands x = conv_same(ctx, z, post_quant_weight_, post_quant_bias_);
  x = conv_same(ctx, x, conv_in_weight_, conv_in_bias_);
  x = mid_resnets_[0].forward(ctx, x);
  x = mid_attention_[0].forward(ctx, x);
  x = mid_resnets_[1].forward(ctx, x);
  for (const SdUpBlock& block : up_blocks_) x = block.forward(ctx, x);
  x = silu(ctx, ctx.group_norm(x, cfg_.norm_groups, norm_out_weight_, norm_out_bias_,
                               cfg_.norm_eps));
  return conv_same(ctx, x, conv_out_weight_, conv_out_bias_);
}

void SdVaeDecoder::append_tensors(std::vector<Tensor>& out) const {
  out.insert(out.end(), {post_quant_weight_, post_quant_bias_, conv_in_weight_, conv_in_bias_});
  for (const SdResnetBlock& resnet : mid_resnets_) resnet.append_tensors(out);
  for (const SdMidAttention& attention : mid_attention_) attention.append_tensors(out);
  for (const SdUpBlock& block : up_blocks_) block.append_tensors(out);
  out.insert(out.end(), {norm_out_weight_, norm_out_bias_, conv_out_weight_, conv_out_bias_});
}

}  // namespace ditserve
