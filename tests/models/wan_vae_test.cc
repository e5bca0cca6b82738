// Wan 2.1 VAE decoder on the CPU backend: frame counts and shapes, public parameter names
// of both layouts, the cached causal conv against a plain loop reference, chunked
// (frame-by-frame, cached) decoding against one pass over the whole sequence, and both
// layouts loading to the same output.

#include "models/wan_vae.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using testing::random_tensor;
using testing::relative_error;

// Every tensor random and non-trivial (biases and gammas too), so that each one matters.
std::vector<ParamSpec> dense(std::vector<ParamSpec> specs) {
  for (ParamSpec& p : specs) {
    const bool gamma = p.name.ends_with("gamma");
    p.init = ParamInit::normal;
    p.std = gamma ? 1.0f : 0.1f;
  }
  return specs;
}

// Serves `base`'s tensors under other names: renamed[i] is base name original[i].
class Renamed final : public WeightSource {
 public:
  Renamed(const WeightSource& base, const std::vector<ParamSpec>& from,
          const std::vector<ParamSpec>& to)
      : base_(base) {
    for (std::size_t i = 0; i < from.size(); ++i) names_[to[i].name] = from[i].name;
  }
  bool contains(const std::string& name) const override { return names_.contains(name); }
  Tensor get(const std::string& name, const Shape& expected) const override {
    const auto it = names_.find(name);
    if (it == names_.end()) throw InvalidArgument("no tensor '" + name + "'");
    return base_.get(it->second, expected);
  }
  std::string describe() const override { return "renamed " + base_.describe(); }

 private:
  const WeightSource& base_;
  std::map<std::string, std::string> names_;
};

std::map<std::string, Shape> by_name(const std::vector<ParamSpec>& specs) {
  std::map<std::string, Shape> out;
  for (const ParamSpec& p : specs) out[p.name] = p.shape;
  return out;
}

class WanVaeTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be_ = make_backend(Device::cpu());
};

TEST_F(WanVaeTest, FramesAre4kPlus1) {
  const WanVAEConfig cfg = wan_vae_2_1();
  EXPECT_EQ(cfg.time_factor(), 4);
  EXPECT_EQ(cfg.spatial_factor(), 8);
  EXPECT_EQ(wan_vae_latent_frames(cfg, 1), 1);
  EXPECT_EQ(wan_vae_latent_frames(cfg, 5), 2);
  EXPECT_EQ(wan_vae_latent_frames(cfg, 81), 21);
  for (const std::int64_t bad : {0, 2, 4, 16, 80}) {
    try {
      wan_vae_latent_frames(cfg, bad);
      FAIL() << bad << " frames accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_TRUE(std::string(e.what()).starts_with("frames:")) << e.what();
    }
  }
}

TEST_F(WanVaeTest, PublicNamesOfBothLayouts) {
  const WanVAEConfig cfg = wan_vae_2_1();
  const auto original = wan_vae_decoder_parameters(cfg, WanVaeLayout::original);
  const auto diffusers = wan_vae_decoder_parameters(cfg, WanVaeLayout::diffusers);
  ASSERT_EQ(original.size(), diffusers.size());
  for (std::size_t i = 0; i < original.size(); ++i)
    EXPECT_EQ(original[i].shape, diffusers[i].shape)
        << original[i].name << " / " << diffusers[i].name;
  const auto o = by_name(original), d = by_name(diffusers);
  EXPECT_EQ(o.size(), original.size()) << "duplicate names";
  // Wan's WanVAE_ (dim 96, dim_mult [1, 2, 4, 4]): decoder dims 384, 384, 384, 192, 96.
  EXPECT_EQ(o.at("conv2.weight"), (Shape{16, 16, 1, 1, 1}));
  EXPECT_EQ(o.at("decoder.conv1.weight"), (Shape{384, 16, 3, 3, 3}));
  EXPECT_EQ(o.at("decoder.middle.0.residual.0.gamma"), (Shape{384, 1, 1, 1}));
  EXPECT_EQ(o.at("decoder.middle.0.residual.6.weight"), (Shape{384, 384, 3, 3, 3}));
  EXPECT_EQ(o.at("decoder.middle.1.norm.gamma"), (Shape{384, 1, 1}));
  EXPECT_EQ(o.at("decoder.middle.1.to_qkv.weight"), (Shape{1152, 384, 1, 1}));
  EXPECT_EQ(o.at("decoder.upsamples.3.time_conv.weight"), (Shape{768, 384, 3, 1, 1}));
  EXPECT_EQ(o.at("decoder.upsamples.3.resample.1.weight"), (Shape{192, 384, 3, 3}));
  EXPECT_EQ(o.at("decoder.upsamples.4.shortcut.weight"), (Shape{384, 192, 1, 1, 1}));
  EXPECT_EQ(o.at("decoder.upsamples.7.time_conv.weight"), (Shape{768, 384, 3, 1, 1}));
  EXPECT_EQ(o.at("decoder.upsamples.11.resample.1.weight"), (Shape{96, 192, 3, 3}));
  EXPECT_FALSE(o.contains("decoder.upsamples.11.time_conv.weight"));  // upsample2d
  EXPECT_EQ(o.at("decoder.upsamples.14.residual.6.weight"), (Shape{96, 96, 3, 3, 3}));
  EXPECT_EQ(o.at("decoder.head.0.gamma"), (Shape{96, 1, 1, 1}));
  EXPECT_EQ(o.at("decoder.head.2.weight"), (Shape{3, 96, 3, 3, 3}));
  EXPECT_FALSE(o.contains("decoder.upsamples.15.residual.0.gamma"));

  EXPECT_EQ(d.at("post_quant_conv.weight"), (Shape{16, 16, 1, 1, 1}));
  EXPECT_EQ(d.at("decoder.conv_in.weight"), (Shape{384, 16, 3, 3, 3}));
  EXPECT_EQ(d.at("decoder.mid_block.resnets.0.norm1.gamma"), (Shape{384, 1, 1, 1}));
  EXPECT_EQ(d.at("decoder.mid_block.resnets.1.conv2.weight"), (Shape{384, 384, 3, 3, 3}));
  EXPECT_EQ(d.at("decoder.mid_block.attentions.0.proj.weight"), (Shape{384, 384, 1, 1}));
  EXPECT_EQ(d.at("decoder.up_blocks.0.upsamplers.0.time_conv.weight"), (Shape{768, 384, 3, 1, 1}));
  EXPECT_EQ(d.at("decoder.up_blocks.1.resnets.0.conv_shortcut.weight"), (Shape{384, 192, 1, 1, 1}));
  EXPECT_EQ(d.at("decoder.up_blocks.2.upsamplers.0.resample.1.weight"), (Shape{96, 192, 3, 3}));
  EXPECT_FALSE(d.contains("decoder.up_blocks.2.upsamplers.0.time_conv.weight"));
  EXPECT_EQ(d.at("decoder.up_blocks.3.resnets.2.norm2.gamma"), (Shape{96, 1, 1, 1}));
  EXPECT_FALSE(d.contains("decoder.up_blocks.3.upsamplers.0.resample.1.weight"));
  EXPECT_EQ(d.at("decoder.norm_out.gamma"), (Shape{96, 1, 1, 1}));
  EXPECT_EQ(d.at("decoder.conv_out.weight"), (Shape{3, 96, 3, 3, 3}));
}

// ---- the cached causal conv against a plain loop ---------------------------------------

// PyTorch layout x [N, C, T, H, W], w [O, C, kt, kh, kw]: kt - 1 zero frames in front, k/2
// on each side in space.
std::vector<float> ref_causal_conv(const Tensor& xt, const Tensor& wt, const Tensor& bt) {
  const std::vector<float> x = xt.to_vector_f32(), w = wt.to_vector_f32(), b = bt.to_vector_f32();
  const std::int64_t n = xt.size(0), c = xt.size(1), t = xt.size(2), h = xt.size(3),
                     wd = xt.size(4);
  const std::int64_t o = wt.size(0), kt = wt.size(2), kh = wt.size(3), kw = wt.size(4);
  std::vector<float> out(static_cast<std::size_t>(n * o * t * h * wd));
  for (std::int64_t in = 0; in < n; ++in)
    for (std::int64_t oc = 0; oc < o; ++oc)
      for (std::int64_t it = 0; it < t; ++it)
        for (std::int64_t ih = 0; ih < h; ++ih)
          for (std::int64_t iw = 0; iw < wd; ++iw) {
            double acc = b[oc];
            for (std::int64_t ic = 0; ic < c; ++ic)
              for (std::int64_t a = 0; a < kt; ++a)
                for (std::int64_t p = 0; p < kh; ++p)
                  for (std::int64_t q = 0; q < kw; ++q) {
                    const std::int64_t st = it - (kt - 1) + a, sh = ih - kh / 2 + p,
                                       sw = iw - kw / 2 + q;
                    if (st < 0 || sh < 0 || sh >= h || sw < 0 || sw >= wd) continue;
                    acc += static_cast<double>(w[(((oc * c + ic) * kt + a) * kh + p) * kw + q]) *
                           x[(((in * c + ic) * t + st) * h + sh) * wd + sw];
                  }
            out[(((in * o + oc) * t + it) * h + ih) * wd + iw] = static_cast<float>(acc);
          }
  return out;
}

TEST_F(WanVaeTest, CachedCausalConvEqualsWholeSequenceReference) {
  std::vector<ParamSpec> specs;
  WanCausalConv3d::append_params(specs, "c.", 3, 4, {3, 3, 3});
  const auto src = random_weights(dense(specs), 3);
  const WanCausalConv3d conv(WeightLoader(*src, *be_, DType::f32, "c."), 3, 4, {3, 3, 3});

  const Tensor x = random_tensor({1, 3, 7, 4, 5}, 11);  // PyTorch layout
  const std::vector<float> expected =
      ref_causal_conv(x, src->get("c.weight", specs[0].shape), src->get("c.bias", {4}));
  const Tensor x_cl = contiguous(*be_, x.permute({0, 2, 3, 4, 1}));  // [N, T, H, W, C]
  const auto to_ref_layout = [&](const Tensor& y) {
    return contiguous(*be_, y.permute({0, 4, 1, 2, 3})).to_vector_f32();
  };
  EXPECT_LT(relative_error(to_ref_layout(conv.forward(*be_, x_cl, nullptr)), expected), 1e-5);
  // Chunks of 1, then 2, then 4 frames, each continuing the cache.
  TemporalCache cache;
  std::vector<Tensor> parts;
  std::int64_t start = 0;
  for (const std::int64_t len : {1, 2, 4}) {
    cache.rewind();
    parts.push_back(
        conv.forward(*be_, contiguous(*be_, x_cl.narrow(1, start, len)), &cache.next()));
    start += len;
  }
  EXPECT_LT(relative_error(to_ref_layout(concat(*be_, parts, 1)), expected), 1e-5);
}

// ---- the decoder ------------------------------------------------------------------------

class TinyWanVaeTest : public WanVaeTest {
 protected:
  WanVAEConfig cfg_ = wan_vae_tiny();
  std::vector<ParamSpec> original_ =
      dense(wan_vae_decoder_parameters(cfg_, WanVaeLayout::original));
  std::unique_ptr<WeightSource> weights_ = random_weights(original_, 7);
  WanVAE vae_{cfg_, *weights_, *be_, DType::f32};
};

TEST_F(TinyWanVaeTest, ShapesOneFrameAndMany) {
  EXPECT_EQ(vae_.layout(), WanVaeLayout::original);
  EXPECT_EQ(vae_.latent_channels(), 16);
  const Tensor one = vae_.decode(random_tensor({1, 16, 1, 2, 3}, 1), 1);
  EXPECT_EQ(one.shape(), (Shape{1, 3, 1, 16, 24}));
  const Tensor three = vae_.decode(random_tensor({2, 16, 3, 2, 2}, 2), 9);
  EXPECT_EQ(three.shape(), (Shape{2, 3, 9, 16, 16}));
  for (const float v : three.to_vector_f32()) ASSERT_TRUE(std::isfinite(v));
  try {
    vae_.decode(random_tensor({1, 16, 3, 2, 2}, 2), 5);
    FAIL() << "3 latent frames decoded as 5 frames";
  } catch (const InvalidArgument& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("latents:")) << e.what();
  }
}

TEST_F(TinyWanVaeTest, ChunkedCachedDecodeEqualsOnePass) {
  const Tensor x = vae_.prepare(random_tensor({1, 16, 4, 2, 2}, 5));
  const Tensor chunked = vae_.decode_frames(x, true);
  const Tensor whole = vae_.decode_frames(x, false);
  ASSERT_EQ(chunked.shape(), (Shape{1, 13, 16, 16, 3}));
  ASSERT_EQ(whole.shape(), chunked.shape());
  EXPECT_LT(relative_error(chunked, whole), 1e-5);
  // The caches matter: decoding frame 3 alone differs from its frames in context.
  const Tensor alone = vae_.decode_frames(contiguous(*be_, x.narrow(1, 3, 1)), true);
  EXPECT_GT(relative_error(alone, contiguous(*be_, chunked.narrow(1, 12, 1))), 1e-2);
  // Causality: the first 5 frames only depend on the first 2 latent frames.
  const Tensor prefix = vae_.decode_frames(contiguous(*be_, x.narrow(1, 0, 2)), true);
  EXPECT_LT(relative_error(prefix, contiguous(*be_, chunked.narrow(1, 0, 5))), 1e-6);
}

TEST_F(TinyWanVaeTest, BothLayoutsLoadToTheSameOutput) {
  const auto diffusers = wan_vae_decoder_parameters(cfg_, WanVaeLayout::diffusers);
  const Renamed renamed(*weights_, original_, diffusers);
  WanVAE other(cfg_, renamed, *be_, DType::f32);
  EXPECT_EQ(other.layout(), WanVaeLayout::diffusers);
  const Tensor z = random_tensor({1, 16, 2, 2, 2}, 9);
  const Tensor a = vae_.decode(z, 5), b = other.decode(z, 5);
  EXPECT_EQ(a.to_vector_f32(), b.to_vector_f32());
  // Another seed gives another output (the comparison above is not vacuous).
  const auto reseeded = random_weights(original_, 8);
  WanVAE third(cfg_, *reseeded, *be_, DType::f32);
  EXPECT_GT(relative_error(third.decode(z, 5), a), 1e-2);
}

TEST_F(WanVaeTest, NeitherLayoutIsAClearError) {
  const auto src = random_weights({{"something.weight", {1}}}, 1);
  try {
    WanVAE vae(wan_vae_tiny(), *src, *be_, DType::f32);
    FAIL() << "loaded";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("post_quant_conv.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ditserve
