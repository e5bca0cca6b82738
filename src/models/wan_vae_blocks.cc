#include "models/wan_vae_blocks.h"

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

// Wan runs its VAE in f32 under PyTorch's defaults, i.e. with TF32 convolutions on CUDA
// (kernels/conv.h: F32Math); exact f32 convolutions ran ~5x slower than diffusers on H100.
constexpr F32Math kWanConvMath = F32Math::tf32;

constexpr std::array<int, 3> k3 = {3, 3, 3};
constexpr std::array<int, 3> k1 = {1, 1, 1};

// F.normalize divides by max(||x||, 1e-12); as a bound on mean(x^2) that is 1e-24 / C,
// which only matters for an all-zero position (0 either way).
constexpr float kRmsEps = 1e-24f;

Tensor last_frames(Backend& be, const Tensor& x, std::int64_t n) {
  const std::int64_t t = x.size(1);
  return contiguous(be, x.narrow(1, t - std::min(n, t), std::min(n, t)));
}

// The residual block's sub-module names: Wan's nn.Sequential indices or diffusers' fields.
struct ResNames {
  std::string norm1, conv1, norm2, conv2, shortcut;
};
ResNames res_names(WanVaeLayout layout) {
  if (layout == WanVaeLayout::original)
    return {"residual.0.", "residual.2.", "residual.3.", "residual.6.", "shortcut."};
  return {"norm1.", "conv1.", "norm2.", "conv2.", "conv_shortcut."};
}

Shape gamma_shape(std::int64_t c, bool images) {
  return images ? Shape{c, 1, 1} : Shape{c, 1, 1, 1};
}

}  // namespace

const char* wan_vae_layout_name(WanVaeLayout layout) {
  return layout == WanVaeLayout::original ? "original" : "diffusers";
}

TemporalCache::Slot& TemporalCache::next() {
  if (cursor_ == slots_.size()) slots_.emplace_back();
  return slots_[cursor_++];
}

std::vector<TemporalCache::Slot*> next_slots(const BandCaches& caches) {
  std::vector<TemporalCache::Slot*> slots;
  for (TemporalCache* cache : caches) slots.push_back(&cache->next());
  return slots;
}

// ---- WanCausalConv3d -------------------------------------------------------------------

WanCausalConv3d::WanCausalConv3d(const WeightLoader& w, std::int64_t in, std::int64_t out,
                                 std::array<int, 3> kernel)
    : kernel_(kernel),
      weight_(w.load_conv("weight", {out, in, kernel[0], kernel[1], kernel[2]})),
      bias_(w.load("bias", {out})) {
  DITSERVE_CHECK(kernel[0] - 1 <= kCacheFrames && kernel[1] % 2 == 1 && kernel[2] % 2 == 1,
                 "WanCausalConv3d: kernel ", kernel[0], "x", kernel[1], "x", kernel[2],
                 " needs an odd spatial size and at most ", kCacheFrames + 1, " taps in time");
}

void WanCausalConv3d::append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                                    std::int64_t in, std::int64_t out, std::array<int, 3> kernel) {
  specs.push_back({prefix + "weight", {out, in, kernel[0], kernel[1], kernel[2]}});
  specs.push_back({prefix + "bias", {out}, ParamInit::zeros});
}

Tensor WanCausalConv3d::forward(Backend& be, const Tensor& x, TemporalCache::Slot* slot) const {
  SpatialShardContext ctx(be);
  std::vector<TemporalCache::Slot*> slots;
  if (slot != nullptr) slots.push_back(slot);
  return forward(ctx, Bands{x}, slots).front();
}

Bands WanCausalConv3d::forward(SpatialShardContext& ctx, const Bands& x,
                               const std::vector<TemporalCache::Slot*>& slots) const {
  const std::int64_t past = kernel_[0] - 1;
  const Bands padded = ctx.map(x, [&](Backend& be, int m, const Tensor& band) {
    DITSERVE_CHECK(band.dim() == 5 && band.size(4) == weight_.size(4), "WanCausalConv3d: x is ",
                   band.describe(), "; expected [N, T, H, W, ", weight_.size(4), "]");
    TemporalCache::Slot* slot = slots.empty() ? nullptr : slots[static_cast<std::size_t>(m)];
    Tensor input = band;
    if (slot != nullptr && past > 0) {
      if (slot->frames.defined()) input = concat(be, {slot->frames, band}, 1);
      slot->frames = last_frames(be, input, kCacheFrames);
      slot->seen = true;
    }
    const std::int64_t front = past - (input.size(1) - band.size(1));
    if (front > 0) input = pad(be, input, {{0, 0}, {front, 0}, {0, 0}, {0, 0}, {0, 0}});
    return contiguous(be, input);
  });
  return ctx.halo_conv(padded, 2, kernel_[1] / 2,
                       [&](Backend& be, int m, const Tensor& input, int row_pad) {
                         return conv3d(be, contiguous(be, input), ctx.param(weight_, m),
                                       ctx.param(bias_, m), {1, 1, 1},
                                       {0, row_pad, kernel_[2] / 2}, kWanConvMath);
                       });
}

void WanCausalConv3d::append_tensors(std::vector<Tensor>& out) const {
  out.insert(out.end(), {weight_, bias_});
}

// ---- WanRmsNorm ------------------------------------------------------------------------

WanRmsNorm::WanRmsNorm(const WeightLoader& w, std::int64_t channels, bool images)
    : gamma_(w.load("gamma", gamma_shape(channels, images)).view({channels})) {}

void WanRmsNorm::append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                               std::int64_t channels, bool images) {
  specs.push_back({prefix + "gamma", gamma_shape(channels, images), ParamInit::ones});
}

Tensor WanRmsNorm::forward(Backend& be, const Tensor& x) const {
  return rms_norm(be, x, gamma_, kRmsEps);
}

Tensor WanRmsNorm::forward(SpatialShardContext& ctx, int member, const Tensor& x) const {
  return rms_norm(ctx.backend(member), x, ctx.param(gamma_, member), kRmsEps);
}

void WanRmsNorm::append_tensors(std::vector<Tensor>& out) const { out.push_back(gamma_); }

// ---- WanResidualBlock ------------------------------------------------------------------

WanResidualBlock::WanResidualBlock(const WeightLoader& w, WanVaeLayout layout, std::int64_t in,
                                   std::int64_t out)
    : norm1_(w.sub(res_names(layout).norm1), in, false),
      norm2_(w.sub(res_names(layout).norm2), out, false),
      conv1_(w.sub(res_names(layout).conv1), in, out, k3),
      conv2_(w.sub(res_names(layout).conv2), out, out, k3) {
  if (in != out) shortcut_.emplace_back(w.sub(res_names(layout).shortcut), in, out, k1);
}

void WanResidualBlock::append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                                     WanVaeLayout layout, std::int64_t in, std::int64_t out) {
  const ResNames n = res_names(layout);
  // nn.Module registration order: residual (norm1, conv1, norm2, conv2), then shortcut.
  WanRmsNorm::append_params(specs, prefix + n.norm1, in, false);
  WanCausalConv3d::append_params(specs, prefix + n.conv1, in, out, k3);
  WanRmsNorm::append_params(specs, prefix + n.norm2, out, false);
  WanCausalConv3d::append_params(specs, prefix + n.conv2, out, out, k3);
  if (in != out) WanCausalConv3d::append_params(specs, prefix + n.shortcut, in, out, k1);
}

Bands WanResidualBlock::forward(SpatialShardContext& ctx, const Bands& x,
                               const BandCaches& caches) const {
  const Bands residual = shortcut_.empty() ? x : shortcut_.front().forward(ctx, x, {});
  const auto norm_silu = [&ctx](const WanRmsNorm& norm, const Bands& in) {
    return ctx.map(in, [&](Backend& be, int m, const Tensor& band) {
      return silu(be, norm.forward(ctx, m, band));
    });
  };
  Bands h = conv1_.forward(ctx, norm_silu(norm1_, x), next_slots(caches));
  h = conv2_.forward(ctx, norm_silu(norm2_, h), next_slots(caches));
  return ctx.zip(h, residual,
                 [](Backend& be, int, const Tensor& a, const Tensor& b) { return add(be, a, b); });
}

void WanResidualBlock::append_tensors(std::vector<Tensor>& out) const {
  norm1_.append_tensors(out);
  conv1_.append_tensors(out);
  norm2_.append_tensors(out);
  conv2_.append_tensors(out);
  for (const WanCausalConv3d& conv : shortcut_) conv.append_tensors(out);
}

// ---- WanAttentionBlock -----------------------------------------------------------------

WanAttentionBlock::WanAttentionBlock(const WeightLoader& w, std::int64_t c)
    : norm_(w.sub("norm."), c, true),
      qkv_weight_(w.load("to_qkv.weight", {3 * c, c, 1, 1}).view({3 * c, c})),
      qkv_bias_(w.load("to_qkv.bias", {3 * c})),
      proj_weight_(w.load("proj.weight", {c, c, 1, 1}).view({c, c})),
      proj_bias_(w.load("proj.bias", {c})) {}

void WanAttentionBlock::append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                                      std::int64_t c) {
  WanRmsNorm::append_params(specs, prefix + "norm.", c, true);
  specs.push_back({prefix + "to_qkv.weight", {3 * c, c, 1, 1}});
  specs.push_back({prefix + "to_qkv.bias", {3 * c}, ParamInit::zeros});
  specs.push_back({prefix + "proj.weight", {c, c, 1, 1}});
  specs.push_back({prefix + "proj.bias", {c}, ParamInit::zeros});
}

Bands WanAttentionBlock::forward(SpatialShardContext& ctx, const Bands& x) const {
  const std::int64_t c = x.at(0).size(4);
  const Bands qkv = ctx.map(x, [&](Backend& be, int m, const Tensor& band) {
    const Tensor frames =
        contiguous(be, band).view({band.size(0) * band.size(1), band.size(2) * band.size(3), c});
    return linear(be, norm_.forward(ctx, m, frames), ctx.param(qkv_weight_, m),
                  ctx.param(qkv_bias_, m));
  });
  // Channels [0, C) are q, [C, 2C) k, [2C, 3C) v (to_qkv(x).chunk(3) in Wan); one head.
  const auto part = [&](std::int64_t i) {
    return ctx.map(qkv, [&](Backend&, int, const Tensor& t) {
      return t.narrow(2, i * c, c).unsqueeze(2);
    });
  };
  const Bands attended = ctx.attention(part(0), part(1), part(2));
  return ctx.zip(x, attended, [&](Backend& be, int m, const Tensor& band, const Tensor& a) {
    const Tensor out = linear(be, a.view({a.size(0), a.size(1), c}), ctx.param(proj_weight_, m),
                              ctx.param(proj_bias_, m));
    return add(be, out.view(band.shape()), band);
  });
}

void WanAttentionBlock::append_tensors(std::vector<Tensor>& out) const {
  norm_.append_tensors(out);
  out.insert(out.end(), {qkv_weight_, qkv_bias_, proj_weight_, proj_bias_});
}

// ---- WanUpsample -----------------------------------------------------------------------

WanUpsample::WanUpsample(const WeightLoader& w, std::int64_t channels, bool temporal)
    : channels_(channels),
      conv_weight_(w.load_conv("resample.1.weight", {channels / 2, channels, 3, 3})),
      conv_bias_(w.load("resample.1.bias", {channels / 2})) {
  DITSERVE_CHECK(channels % 2 == 0, "WanUpsample: channels must be even, got ", channels);
  if (temporal)
    time_conv_.emplace_back(w.sub("time_conv."), channels, 2 * channels,
                            std::array<int, 3>{3, 1, 1});
}

void WanUpsample::append_params(std::vector<ParamSpec>& specs, const std::string& prefix,
                                std::int64_t c, bool temporal) {
  specs.push_back({prefix + "resample.1.weight", {c / 2, c, 3, 3}});
  specs.push_back({prefix + "resample.1.bias", {c / 2}, ParamInit::zeros});
  if (temporal) {
    WanCausalConv3d::append_params(specs, prefix + "time_conv.", c, 2 * c, {3, 1, 1});
  }
}

// The time_conv's 2C output channels of frame t are frames 2t (channels [0, C)) and
// 2t + 1 (channels [C, 2C)): Wan's reshape(b, 2, c, t, h, w) then stack on dim 3.
Bands WanUpsample::time_double(SpatialShardContext& ctx, const Bands& x,
                               const std::vector<TemporalCache::Slot*>& slots) const {
  return ctx.map(time_conv_.front().forward(ctx, x, slots), [&](Backend& be, int, const Tensor& y) {
    const std::int64_t n = y.size(0), t = y.size(1), h = y.size(2), w = y.size(3);
    return contiguous(be, y.view({n, t, h, w, 2, channels_}).permute({0, 1, 4, 2, 3, 5}))
        .view({n, 2 * t, h, w, channels_});
  });
}

Bands WanUpsample::forward(SpatialShardContext& ctx, const Bands& x,
                           const BandCaches& caches) const {
  for (const Tensor& band : x) {
    DITSERVE_CHECK(band.dim() == 5 && band.size(4) == channels_, "WanUpsample: x is ",
                   band.describe(), "; expected [N, T, H, W, ", channels_, "]");
  }
  Bands y = x;
  if (!time_conv_.empty()) {
    if (!caches.empty()) {
      const std::vector<TemporalCache::Slot*> slots = next_slots(caches);
      if (slots.front()->seen) {
        y = time_double(ctx, x, slots);
      } else {
        // Wan's 'Rep': the first chunk passes; later ones start from zeros.
        for (TemporalCache::Slot* slot : slots) slot->seen = true;
      }
    } else if (x.front().size(1) > 1) {
      const Bands later = ctx.map(
          x, [](Backend&, int, const Tensor& t) { return t.narrow(1, 1, t.size(1) - 1); });
      const Bands rest = time_double(ctx, later, {});
      y = ctx.zip(x, rest, [](Backend& be, int, const Tensor& t, const Tensor& r) {
        return concat(be, {t.narrow(1, 0, 1), r}, 1);
      });
    }
  }
  // Nearest 2x doubles every band's rows, so the bands stay aligned with the image.
  const Bands up = ctx.map(y, [&](Backend& be, int, const Tensor& t) {
    return upsample_nearest(
        be, contiguous(be, t).view({t.size(0) * t.size(1), t.size(2), t.size(3), channels_}),
        {2, 2});
  });
  const Bands conv =
      ctx.halo_conv(up, 1, 1, [&](Backend& be, int m, const Tensor& in, int row_pad) {
        return conv2d(be, in, ctx.param(conv_weight_, m), ctx.param(conv_bias_, m), {1, 1},
                      {row_pad, 1}, kWanConvMath);
      });
  return ctx.zip(y, conv, [&](Backend&, int, const Tensor& t, const Tensor& out) {
    return out.view({t.size(0), t.size(1), 2 * t.size(2), 2 * t.size(3), channels_ / 2});
  });
}


void WanUpsample::append_tensors(std::vector<Tensor>& out) const {
  out.insert(out.end(), {conv_weight_, conv_bias_});
  for (const WanCausalConv3d& conv : time_conv_) conv.append_tensors(out);
}

}  // namespace ditserve
