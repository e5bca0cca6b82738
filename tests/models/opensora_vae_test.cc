// Open-Sora 1.2 VAE decoder on the CPU backend: frame bookkeeping, public parameter names,
// each block against a plain loop reference in PyTorch layout, and the tiny model end to
// end.

#include "models/opensora_vae.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "io/safetensors.h"
#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using testing::random_tensor;
using testing::relative_error;

// ---- plain references, PyTorch layout (N, C, spatial...), f32 ----------------------------

struct Array {  // contiguous host values with a shape
  Shape shape;
  std::vector<float> v;
  std::int64_t size(int d) const { return shape[d]; }
};

Array from_tensor(const Tensor& t) { return {t.shape(), t.to_vector_f32()}; }

std::int64_t spatial_numel(const Array& a) {
  std::int64_t n = 1;
  for (std::size_t d = 2; d < a.shape.size(); ++d) n *= a.shape[d];
  return n;
}

Array ref_group_norm(const Array& x, int groups, const Array& w, const Array& b, double eps) {
  Array out = x;
  const std::int64_t n = x.size(0), c = x.size(1), s = spatial_numel(x), cg = c / groups;
  for (std::int64_t i = 0; i < n; ++i) {
    for (int g = 0; g < groups; ++g) {
      const std::int64_t base = (i * c + g * cg) * s;
      double mean = 0, var = 0;
      for (std::int64_t k = 0; k < cg * s; ++k) mean += x.v[base + k];
      mean /= static_cast<double>(cg * s);
      for (std::int64_t k = 0; k < cg * s; ++k) var += (x.v[base + k] - mean) * (x.v[base + k] - mean);
      var /= static_cast<double>(cg * s);
      for (std::int64_t k = 0; k < cg * s; ++k) {
        const std::int64_t ch = g * cg + k / s;
        out.v[base + k] = static_cast<float>((x.v[base + k] - mean) / std::sqrt(var + eps) *
                                             w.v[ch] + b.v[ch]);
      }
    }
  }
  return out;
}

Array ref_silu(Array x) {
  for (float& e : x.v) e = e / (1.0f + std::exp(-e));
  return x;
}

Array ref_add(Array a, const Array& b) {
  for (std::size_t i = 0; i < a.v.size(); ++i) a.v[i] += b.v[i];
  return a;
}

// Conv3d, stride 1; time padded by pt_front zeros in front, H/W by k/2 on both sides.
// bias may be empty.
Array ref_conv3d(const Array& x, const Array& w, const Array& bias, std::int64_t pt_front) {
  const std::int64_t n = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), wd = x.size(4);
  const std::int64_t o = w.size(0), kt = w.size(2), kh = w.size(3), kw = w.size(4);
  const std::int64_t ph = kh / 2, pw = kw / 2;
  const std::int64_t to = t + pt_front - kt + 1;
  Array out{{n, o, to, h, wd}, std::vector<float>(n * o * to * h * wd)};
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t oc = 0; oc < o; ++oc)
      for (std::int64_t tt = 0; tt < to; ++tt)
        for (std::int64_t y = 0; y < h; ++y)
          for (std::int64_t xx = 0; xx < wd; ++xx) {
            double acc = bias.v.empty() ? 0.0 : bias.v[oc];
            for (std::int64_t ic = 0; ic < c; ++ic)
              for (std::int64_t a = 0; a < kt; ++a)
                for (std::int64_t b = 0; b < kh; ++b)
                  for (std::int64_t d = 0; d < kw; ++d) {
                    const std::int64_t ti = tt + a - pt_front, yi = y + b - ph, xi = xx + d - pw;
                    if (ti < 0 || ti >= t || yi < 0 || yi >= h || xi < 0 || xi >= wd) continue;
                    acc += static_cast<double>(
                               x.v[(((i * c + ic) * t + ti) * h + yi) * wd + xi]) *
                           w.v[(((oc * c + ic) * kt + a) * kh + b) * kw + d];
                  }
            out.v[(((i * o + oc) * to + tt) * h + y) * wd + xx] = static_cast<float>(acc);
          }
  return out;
}

// Conv2d with padding k/2 through the 3D reference (one frame, no time padding).
Array ref_conv2d(const Array& x, const Array& w, const Array& bias) {
  Array x3{{x.size(0), x.size(1), 1, x.size(2), x.size(3)}, x.v};
  Array w3{{w.size(0), w.size(1), 1, w.size(2), w.size(3)}, w.v};
  Array out = ref_conv3d(x3, w3, bias, 0);
  return {{x.size(0), w.size(0), x.size(2), x.size(3)}, out.v};
}

// ---- helpers ---------------------------------------------------------------------------

// Every parameter random (norm weights and biases too), so that every term is exercised.
std::unique_ptr<WeightSource> random_source(std::vector<ParamSpec> specs, std::uint64_t seed,
                                            float std) {
  for (ParamSpec& s : specs) {
    s.init = ParamInit::normal;
    s.std = std;
  }
  return random_weights(std::move(specs), seed);
}

Array param(const WeightSource& src, const std::string& name, const Shape& shape) {
  return from_tensor(src.get(name, shape));
}

class OpenSoraVaeTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu());

  // PyTorch layout [N, C, *spatial] -> channels-last [N, *spatial, C] and back.
  Tensor to_channels_last(const Tensor& x) {
    std::vector<std::int64_t> perm{0};
    for (std::int64_t d = 2; d < x.dim(); ++d) perm.push_back(d);
    perm.push_back(1);
    return contiguous(*be, x.permute(perm));
  }
  Array from_channels_last(const Tensor& x) {
    std::vector<std::int64_t> perm{0, x.dim() - 1};
    for (std::int64_t d = 1; d < x.dim() - 1; ++d) perm.push_back(d);
    return from_tensor(contiguous(*be, x.permute(perm)));
  }
};

// ---- frames bookkeeping ----------------------------------------------------------------

TEST_F(OpenSoraVaeTest, LatentFramesFollowMicroChunks) {
  const OpenSoraVAEConfig cfg = opensora_vae_v1_2();
  const std::map<std::int64_t, std::int64_t> expected = {
      {1, 1}, {4, 1}, {5, 2}, {8, 2}, {16, 4}, {17, 5}, {18, 6},
      {21, 6}, {22, 7}, {34, 10}, {51, 15}, {102, 30}, {204, 60}};
  for (const auto& [frames, latent] : expected) {
    EXPECT_EQ(opensora_vae_latent_frames(cfg, frames), latent) << frames << " frames";
    EXPECT_EQ(opensora_vae_latent_frames(opensora_vae_tiny(), frames), latent) << frames;
  }
  for (const std::int64_t bad : {0, -1, -17}) {
    try {
      opensora_vae_latent_frames(cfg, bad);
      ADD_FAILURE() << bad << " frames accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("frames"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(">= 1"), std::string::npos) << e.what();
    }
  }
}

// ---- parameter names -------------------------------------------------------------------

TEST_F(OpenSoraVaeTest, V12ParametersHavePublicNamesAndShapes) {
  const std::vector<ParamSpec> specs = opensora_vae_decoder_parameters(opensora_vae_v1_2());
  std::map<std::string, Shape> by_name;
  std::int64_t spatial = 0, temporal = 0;
  for (const ParamSpec& s : specs) {
    EXPECT_TRUE(by_name.emplace(s.name, s.shape).second) << "duplicate " << s.name;
    if (s.name.starts_with("spatial_vae.module.")) spatial += shape_numel(s.shape);
    if (s.name.starts_with("temporal_vae.")) temporal += shape_numel(s.shape);
  }
  const std::map<std::string, Shape> expected = {
      {"scale", {1, 4, 1, 1, 1}},
      {"shift", {1, 4, 1, 1, 1}},
      {"temporal_vae.post_quant_conv.conv.weight", {4, 4, 1, 1, 1}},
      {"temporal_vae.decoder.conv1.conv.weight", {512, 4, 3, 3, 3}},
      {"temporal_vae.decoder.conv1.conv.bias", {512}},
      {"temporal_vae.decoder.res_blocks.3.conv2.conv.weight", {512, 512, 3, 3, 3}},
      {"temporal_vae.decoder.block_res_blocks.3.3.norm2.weight", {512}},
      {"temporal_vae.decoder.conv_blocks.2.conv.weight", {1024, 512, 3, 3, 3}},
      {"temporal_vae.decoder.conv_blocks.1.conv.weight", {512, 256, 3, 3, 3}},
      {"temporal_vae.decoder.block_res_blocks.2.0.conv3.conv.weight", {256, 512, 1, 1, 1}},
      {"temporal_vae.decoder.block_res_blocks.0.0.conv3.conv.weight", {128, 256, 1, 1, 1}},
      {"temporal_vae.decoder.block_res_blocks.1.3.conv1.conv.weight", {256, 256, 3, 3, 3}},
      {"temporal_vae.decoder.norm1.weight", {128}},
      {"temporal_vae.decoder.conv_out.conv.weight", {4, 128, 3, 3, 3}},
      {"spatial_vae.module.post_quant_conv.weight", {4, 4, 1, 1}},
      {"spatial_vae.module.decoder.conv_in.weight", {512, 4, 3, 3}},
      {"spatial_vae.module.decoder.mid_block.resnets.1.conv2.weight", {512, 512, 3, 3}},
      {"spatial_vae.module.decoder.mid_block.attentions.0.group_norm.weight", {512}},
      {"spatial_vae.module.decoder.mid_block.attentions.0.to_q.weight", {512, 512}},
      {"spatial_vae.module.decoder.mid_block.attentions.0.to_out.0.bias", {512}},
      {"spatial_vae.module.decoder.up_blocks.0.upsamplers.0.conv.weight", {512, 512, 3, 3}},
      {"spatial_vae.module.decoder.up_blocks.2.resnets.0.conv_shortcut.weight", {256, 512, 1, 1}},
      {"spatial_vae.module.decoder.up_blocks.3.resnets.2.conv1.weight", {128, 128, 3, 3}},
      {"spatial_vae.module.decoder.conv_norm_out.bias", {128}},
      {"spatial_vae.module.decoder.conv_out.weight", {3, 128, 3, 3}},
  };
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(by_name.contains(name)) << name;
    EXPECT_EQ(by_name[name], shape) << name;
  }
  // Identity levels and the last up block have no parameters; convs in ResBlocks no bias.
  for (const char* absent : {"temporal_vae.decoder.conv_blocks.0.conv.weight",
                             "temporal_vae.decoder.res_blocks.0.conv1.conv.bias",
                             "temporal_vae.decoder.block_res_blocks.1.0.conv3.conv.weight",
                             "spatial_vae.module.decoder.up_blocks.3.upsamplers.0.conv.weight",
                             "spatial_vae.module.decoder.up_blocks.1.resnets.0.conv_shortcut.weight"}) {
    EXPECT_FALSE(by_name.contains(absent)) << absent;
  }
  // diffusers' SD/SDXL AutoencoderKL: decoder 49,490,179 + post_quant_conv 20 parameters.
  EXPECT_EQ(spatial, 49490199);
  // Summed by hand from the module structure of vae_temporal.py (Decoder + post_quant_conv).
  EXPECT_EQ(temporal, 165265944);
}

// ---- blocks against the references -----------------------------------------------------

TEST_F(OpenSoraVaeTest, CausalConv3dMatchesReferenceAndIsCausal) {
  std::vector<ParamSpec> specs;
  CausalConv3d::append_params(specs, "c.", 3, 5, {3, 3, 3}, true);
  CausalConv3d::append_params(specs, "p.", 3, 2, {1, 1, 1}, false);
  const auto src = random_source(specs, 11, 0.3f);
  const WeightLoader loader(*src, *be, DType::f32);
  const CausalConv3d conv(loader.sub("c."), 3, 5, {3, 3, 3}, true);
  const CausalConv3d point(loader.sub("p."), 3, 2, {1, 1, 1}, false);

  const Tensor x = random_tensor({2, 3, 4, 5, 6}, 1);  // [N, C, T, H, W]
  const Tensor y = conv.forward(*be, to_channels_last(x));
  EXPECT_EQ(y.shape(), (Shape{2, 4, 5, 6, 5}));
  const Array ref = ref_conv3d(from_tensor(x), param(*src, "c.conv.weight", {5, 3, 3, 3, 3}),
                               param(*src, "c.conv.bias", {5}), 2);
  EXPECT_LE(relative_error(from_channels_last(y).v, ref.v), 1e-4);

  const Tensor yp = point.forward(*be, to_channels_last(x));
  EXPECT_EQ(yp.shape(), (Shape{2, 4, 5, 6, 2}));
  const Array refp =
      ref_conv3d(from_tensor(x), param(*src, "p.conv.weight", {2, 3, 1, 1, 1}), {}, 0);
  EXPECT_LE(relative_error(from_channels_last(yp).v, refp.v), 1e-4);

  // Changing the last input frame leaves the outputs of the earlier frames unchanged.
  std::vector<float> changed = x.to_vector_f32();
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t c = 0; c < 3; ++c) changed[((n * 3 + c) * 4 + 3) * 30] += 5.0f;
  const Tensor y2 = conv.forward(*be, to_channels_last(Tensor::from_vector(changed, x.shape())));
  EXPECT_EQ(relative_error(y2.narrow(1, 0, 3).to_vector_f32(),
                           y.narrow(1, 0, 3).to_vector_f32()), 0.0);
  EXPECT_GT(relative_error(y2.narrow(1, 3, 1).to_vector_f32(),
                           y.narrow(1, 3, 1).to_vector_f32()), 1e-3);
}

TEST_F(OpenSoraVaeTest, TemporalResBlockMatchesReference) {
  std::vector<ParamSpec> specs;
  TemporalResBlock::append_params(specs, "r.", 8, 4);
  const auto src = random_source(specs, 12, 0.3f);
  const TemporalResBlock block(WeightLoader(*src, *be, DType::f32, "r."), 8, 4, 2, 1e-5f);
  const Tensor x = random_tensor({2, 8, 3, 4, 5}, 2);
  const Tensor y = block.forward(*be, to_channels_last(x));
  EXPECT_EQ(y.shape(), (Shape{2, 3, 4, 5, 4}));

  const Array xa = from_tensor(x);
  Array h = ref_silu(ref_group_norm(xa, 2, param(*src, "r.norm1.weight", {8}),
                                    param(*src, "r.norm1.bias", {8}), 1e-5));
  h = ref_conv3d(h, param(*src, "r.conv1.conv.weight", {4, 8, 3, 3, 3}), {}, 2);
  h = ref_silu(ref_group_norm(h, 2, param(*src, "r.norm2.weight", {4}),
                              param(*src, "r.norm2.bias", {4}), 1e-5));
  h = ref_conv3d(h, param(*src, "r.conv2.conv.weight", {4, 4, 3, 3, 3}), {}, 2);
  const Array shortcut = ref_conv3d(xa, param(*src, "r.conv3.conv.weight", {4, 8, 1, 1, 1}), {}, 0);
  EXPECT_LE(relative_error(from_channels_last(y).v, ref_add(h, shortcut).v), 1e-4);
}

TEST_F(OpenSoraVaeTest, DepthToTimeInterleavesChannelPairs) {
  // x[n, t, h, w, c*2 + s] = 1000 t + 10 c + s.
  std::vector<float> values;
  for (int t = 0; t < 3; ++t)
    for (int hw = 0; hw < 2; ++hw)
      for (int c = 0; c < 4; ++c)
        for (int s = 0; s < 2; ++s) values.push_back(1000.0f * t + 10.0f * c + s);
  const Tensor x = Tensor::from_vector(values, {1, 3, 1, 2, 8});
  const Tensor y = depth_to_time(*be, x, 2);
  ASSERT_EQ(y.shape(), (Shape{1, 6, 1, 2, 4}));
  for (int t = 0; t < 6; ++t)
    for (int c = 0; c < 4; ++c)
      EXPECT_EQ(y.item_f32({0, t, 0, 1, c}), 1000.0f * (t / 2) + 10.0f * c + (t % 2));
  EXPECT_THROW(depth_to_time(*be, Tensor::from_vector(values, {1, 3, 1, 2, 8}), 3),
               InvalidArgument);
}

TEST_F(OpenSoraVaeTest, SdResnetBlockMatchesReference) {
  std::vector<ParamSpec> specs;
  SdResnetBlock::append_params(specs, "r.", 8, 4);
  const auto src = random_source(specs, 13, 0.3f);
  const SdResnetBlock block(WeightLoader(*src, *be, DType::f32, "r."), 8, 4, 2, 1e-6f);
  const Tensor x = random_tensor({2, 8, 5, 6}, 3);
  const Tensor y = block.forward(*be, to_channels_last(x));
  EXPECT_EQ(y.shape(), (Shape{2, 5, 6, 4}));

  const Array xa = from_tensor(x);
  Array h = ref_silu(ref_group_norm(xa, 2, param(*src, "r.norm1.weight", {8}),
                                    param(*src, "r.norm1.bias", {8}), 1e-6));
  h = ref_conv2d(h, param(*src, "r.conv1.weight", {4, 8, 3, 3}), param(*src, "r.conv1.bias", {4}));
  h = ref_silu(ref_group_norm(h, 2, param(*src, "r.norm2.weight", {4}),
                              param(*src, "r.norm2.bias", {4}), 1e-6));
  h = ref_conv2d(h, param(*src, "r.conv2.weight", {4, 4, 3, 3}), param(*src, "r.conv2.bias", {4}));
  const Array shortcut = ref_conv2d(xa, param(*src, "r.conv_shortcut.weight", {4, 8, 1, 1}),
                                    param(*src, "r.conv_shortcut.bias", {4}));
  EXPECT_LE(relative_error(from_channels_last(y).v, ref_add(shortcut, h).v), 1e-4);
}

TEST_F(OpenSoraVaeTest, SdMidAttentionMatchesReference) {
  const std::int64_t c = 8, n = 2, hh = 3, ww = 4, s = hh * ww;
  std::vector<ParamSpec> specs;
  SdMidAttention::append_params(specs, "a.", c);
  const auto src = random_source(specs, 14, 0.3f);
  const SdMidAttention attn(WeightLoader(*src, *be, DType::f32, "a."), c, 4, 1e-6f);
  const Tensor x = random_tensor({n, c, hh, ww}, 4);
  const Tensor y = attn.forward(*be, to_channels_last(x));
  EXPECT_EQ(y.shape(), (Shape{n, hh, ww, c}));

  const Array xa = from_tensor(x);
  const Array normed = ref_group_norm(xa, 4, param(*src, "a.group_norm.weight", {c}),
                                      param(*src, "a.group_norm.bias", {c}), 1e-6);
  // proj[name][n][pos][o] = sum_i W[o, i] * normed[n, i, pos] + b[o]
  auto project = [&](const std::string& name, const Array& in) {
    const Array w = param(*src, name + ".weight", {c, c}), b = param(*src, name + ".bias", {c});
    std::vector<double> out(n * s * c);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t p = 0; p < s; ++p)
        for (std::int64_t o = 0; o < c; ++o) {
          double acc = b.v[o];
          for (std::int64_t k = 0; k < c; ++k) acc += w.v[o * c + k] * in.v[(i * c + k) * s + p];
          out[(i * s + p) * c + o] = acc;
        }
    return out;
  };
  const auto q = project("a.to_q", normed), k = project("a.to_k", normed),
             v = project("a.to_v", normed);
  Array attended{{n, c, hh, ww}, std::vector<float>(n * c * s)};
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t p = 0; p < s; ++p) {
      std::vector<double> score(s);
      double top = -1e300, sum = 0;
      for (std::int64_t r = 0; r < s; ++r) {
        double dot = 0;
        for (std::int64_t d = 0; d < c; ++d) dot += q[(i * s + p) * c + d] * k[(i * s + r) * c + d];
        score[r] = dot / std::sqrt(static_cast<double>(c));
        top = std::max(top, score[r]);
      }
      for (double& e : score) sum += (e = std::exp(e - top));
      for (std::int64_t d = 0; d < c; ++d) {
        double acc = 0;
        for (std::int64_t r = 0; r < s; ++r) acc += score[r] / sum * v[(i * s + r) * c + d];
        attended.v[(i * c + d) * s + p] = static_cast<float>(acc);
      }
    }
  const auto out = project("a.to_out.0", attended);
  Array ref = xa;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t d = 0; d < c; ++d)
      for (std::int64_t p = 0; p < s; ++p)
        ref.v[(i * c + d) * s + p] += static_cast<float>(out[(i * s + p) * c + d]);
  EXPECT_LE(relative_error(from_channels_last(y).v, ref.v), 1e-4);
}

// ---- stages of the tiny model ----------------------------------------------------------

class TinyVaeTest : public OpenSoraVaeTest {
 protected:
  OpenSoraVAEConfig cfg = opensora_vae_tiny();
  std::unique_ptr<WeightSource> weights = random_weights(opensora_vae_decoder_parameters(cfg), 5);
};

TEST_F(TinyVaeTest, SpatialStagesDoubleTheSizeThreeTimes) {
  const WeightLoader w(*weights, *be, DType::f32, "spatial_vae.module.decoder.");
  const SdUpBlock up0(w.sub("up_blocks.0."), cfg.spatial, 32, 32, true);
  EXPECT_EQ(up0.forward(*be, to_channels_last(random_tensor({2, 32, 4, 5}, 6))).shape(),
            (Shape{2, 8, 10, 32}));
  const SdUpBlock up3(w.sub("up_blocks.3."), cfg.spatial, 32, 16, false);
  EXPECT_EQ(up3.forward(*be, to_channels_last(random_tensor({2, 32, 4, 5}, 6))).shape(),
            (Shape{2, 4, 5, 16}));

  const SdVaeDecoder decoder(cfg.spatial, WeightLoader(*weights, *be, DType::f32,
                                                       "spatial_vae.module."));
  const Tensor images = decoder.forward(*be, to_channels_last(random_tensor({3, 4, 4, 6}, 7)));
  EXPECT_EQ(images.shape(), (Shape{3, 32, 48, 3}));
  for (const float e : images.to_vector_f32()) ASSERT_TRUE(std::isfinite(e));
}

TEST_F(TinyVaeTest, TemporalDecoderQuadruplesFrames) {
  const TemporalVaeDecoder decoder(cfg.temporal,
                                   WeightLoader(*weights, *be, DType::f32, "temporal_vae."));
  EXPECT_EQ(cfg.temporal.time_factor(), 4);
  EXPECT_EQ(decoder.forward(*be, to_channels_last(random_tensor({2, 4, 5, 3, 4}, 8))).shape(),
            (Shape{2, 20, 3, 4, 4}));
  EXPECT_EQ(decoder.forward(*be, to_channels_last(random_tensor({1, 4, 1, 3, 4}, 8))).shape(),
            (Shape{1, 4, 3, 4, 4}));
}

TEST_F(TinyVaeTest, TemporalChunksDropTheirCausalPadding) {
  const OpenSoraVAE vae(cfg, *weights, *be, DType::f32);
  const TemporalVaeDecoder decoder(cfg.temporal,
                                   WeightLoader(*weights, *be, DType::f32, "temporal_vae."));
  // 22 frames = a 17-frame chunk (5 latent frames) + a 5-frame tail (2 latent frames).
  const Tensor z = to_channels_last(random_tensor({1, 4, 7, 3, 4}, 9));
  const Tensor x = vae.decode_temporal(z, 22);
  ASSERT_EQ(x.shape(), (Shape{1, 22, 3, 4, 4}));
  const Tensor head = decoder.forward(*be, contiguous(*be, z.narrow(1, 0, 5)));  // 20 frames
  const Tensor tail = decoder.forward(*be, contiguous(*be, z.narrow(1, 5, 2)));  // 8 frames
  EXPECT_EQ(relative_error(x.narrow(1, 0, 17).to_vector_f32(),
                           head.narrow(1, 3, 17).to_vector_f32()), 0.0);
  EXPECT_EQ(relative_error(x.narrow(1, 17, 5).to_vector_f32(),
                           tail.narrow(1, 3, 5).to_vector_f32()), 0.0);
  EXPECT_THROW(vae.decode_temporal(z, 21), InvalidArgument);  // 21 frames need 6
}

TEST_F(TinyVaeTest, DecodesValidFrameCountsDeterministically) {
  OpenSoraVAE vae(cfg, *weights, *be, DType::f32);
  EXPECT_EQ(vae.latent_channels(), 4);
  EXPECT_EQ(vae.spatial_factor(), 8);
  for (const auto& [frames, latent] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {16, 4}, {17, 5}, {1, 1}}) {
    ASSERT_EQ(vae.latent_frames(frames), latent);
    const Tensor z = random_tensor({1, 4, latent, 4, 3}, 10, -2.0f, 2.0f);
    const Tensor video = vae.decode(z, frames);
    ASSERT_EQ(video.shape(), (Shape{1, 3, frames, 32, 24})) << frames;
    const std::vector<float> values = video.to_vector_f32();
    double energy = 0;
    for (const float e : values) {
      ASSERT_TRUE(std::isfinite(e));
      energy += e * e;
    }
    EXPECT_GT(energy, 0.0);
    EXPECT_EQ(relative_error(vae.decode(z, frames).to_vector_f32(), values), 0.0);
  }
}

TEST_F(TinyVaeTest, DecodeMatchesItsStagesAndBatchesIndependently) {
  OpenSoraVAE vae(cfg, *weights, *be, DType::f32);
  const Tensor z = random_tensor({2, 4, 2, 2, 3}, 11);  // 5 frames, batch of two
  const Tensor video = vae.decode(z, 5);
  ASSERT_EQ(video.shape(), (Shape{2, 3, 5, 16, 24}));
  // Batch item 1 alone gives the same frames (GroupNorm statistics are per sample).
  const Tensor alone = vae.decode(contiguous(*be, z.narrow(0, 1, 1)), 5);
  EXPECT_LE(relative_error(alone.to_vector_f32(), video.narrow(0, 1, 1).to_vector_f32()), 1e-5);
  // With scale 1 and shift 0, decode == spatial(temporal(z)) in channels-last form.
  const Tensor x = vae.decode_temporal(to_channels_last(z), 5);
  const Tensor frame3 = vae.decode_spatial(contiguous(*be, x.select(0, 0).narrow(0, 3, 1)));
  const Tensor expected = contiguous(*be, video.select(0, 0).narrow(1, 3, 1).permute({1, 2, 3, 0}));
  EXPECT_LE(relative_error(frame3.to_vector_f32(), expected.to_vector_f32()), 1e-5);
}

TEST_F(TinyVaeTest, AppliesScaleAndShiftPerChannel) {
  std::vector<ParamSpec> specs = opensora_vae_decoder_parameters(cfg);
  for (ParamSpec& s : specs) {
    if (s.name == "scale" || s.name == "shift") s.init = ParamInit::normal, s.std = 1.0f;
  }
  const auto src = random_weights(specs, 5);
  OpenSoraVAE shifted(cfg, *src, *be, DType::f32);
  OpenSoraVAE plain(cfg, *weights, *be, DType::f32);
  const std::vector<float> scale = src->get("scale", {1, 4, 1, 1, 1}).to_vector_f32();
  const std::vector<float> shift = src->get("shift", {1, 4, 1, 1, 1}).to_vector_f32();
  const Tensor z = random_tensor({1, 4, 1, 2, 2}, 12);
  std::vector<float> moved = z.to_vector_f32();
  for (std::size_t i = 0; i < moved.size(); ++i) moved[i] = moved[i] * scale[i / 4] + shift[i / 4];
  EXPECT_LE(relative_error(shifted.decode(z, 1).to_vector_f32(),
                           plain.decode(Tensor::from_vector(moved, z.shape()), 1).to_vector_f32()),
            1e-5);
}

TEST_F(TinyVaeTest, RejectsMismatchedLatents) {
  OpenSoraVAE vae(cfg, *weights, *be, DType::f32);
  auto message = [&](const Tensor& z, std::int64_t frames) -> std::string {
    try {
      vae.decode(z, frames);
    } catch (const InvalidArgument& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message(random_tensor({1, 4, 5, 2, 2}, 1), 16).find("latents"), std::string::npos);
  EXPECT_NE(message(random_tensor({1, 3, 4, 2, 2}, 1), 16).find("latents"), std::string::npos);
  EXPECT_NE(message(random_tensor({1, 4, 4, 2, 2}, 1), 0).find("frames"), std::string::npos);
}

TEST_F(TinyVaeTest, LoadsACheckpointThatAlsoHoldsTheEncoder) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("ditserve_vae_test_" + std::to_string(::getpid()));
  std::vector<ParamSpec> specs = opensora_vae_decoder_parameters(cfg);
  specs.push_back({"temporal_vae.encoder.conv_in.conv.weight", {16, 4, 3, 3, 3}});
  specs.push_back({"spatial_vae.module.encoder.conv_in.weight", {16, 3, 3, 3}});
  specs.push_back({"spatial_vae.module.quant_conv.weight", {8, 8, 1, 1}});
  write_random_checkpoint(dir, specs, 5, DType::f32);
  {
    const auto file = open_weight_file(dir);
    OpenSoraVAE from_file(cfg, *file, *be, DType::f32);
    OpenSoraVAE from_memory(cfg, *weights, *be, DType::f32);
    const Tensor z = random_tensor({1, 4, 1, 2, 2}, 13);
    EXPECT_EQ(relative_error(from_file.decode(z, 3).to_vector_f32(),
                             from_memory.decode(z, 3).to_vector_f32()), 0.0);
  }
  // A missing tensor is named.
  std::vector<ParamSpec> partial = opensora_vae_decoder_parameters(cfg);
  const std::string missing = partial[3].name;
  partial.erase(partial.begin() + 3);
  const auto incomplete = random_weights(partial, 5);
  try {
    OpenSoraVAE vae(cfg, *incomplete, *be, DType::f32);
    ADD_FAILURE() << "loaded without " << missing;
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

// Compares with bench/reference/vae_reference.py, which writes the safetensors file that
// DITSERVE_VAE_REFERENCE names (latents, video, the config name and the checkpoint path in
// its metadata); without it the test is skipped. Runs on cuda:0 when there is one (in the
// reference's dtype), else on the CPU in f32.
TEST(OpenSoraVaeReferenceTest, MatchesPyTorch) {
  const char* path = std::getenv("DITSERVE_VAE_REFERENCE");
  if (path == nullptr || *path == '\0') GTEST_SKIP() << "DITSERVE_VAE_REFERENCE is not set";
  const SafetensorsFile reference(path);
  const auto& meta = reference.metadata();
  OpenSoraVAEConfig cfg = meta.at("config") == "tiny" ? opensora_vae_tiny() : opensora_vae_v1_2();
  cfg.micro_frame_size = std::stoll(meta.at("micro_frame_size"));
  const std::int64_t frames = std::stoll(meta.at("frames"));

  const Device device = cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu();
  const DType dtype = device.is_cuda() && meta.at("dtype") == "bf16" ? DType::bf16 : DType::f32;
  const std::unique_ptr<Backend> be = make_backend(device);
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  // DITSERVE_VAE_CHECKPOINT overrides the recorded path (a file made on another machine).
  const char* moved = std::getenv("DITSERVE_VAE_CHECKPOINT");
  const auto checkpoint = open_weight_file(
      moved != nullptr && *moved != '\0' ? std::string(moved) : meta.at("checkpoint"));
  OpenSoraVAE vae(cfg, *checkpoint, *be, dtype);
  const Tensor video = vae.decode(transfer(*host, reference.get("latents"), *be), frames);
  const Tensor got = transfer(*be, video, *host);
  const double err = relative_error(got, reference.get("video"));
  std::printf("OpenSoraVAE vs PyTorch (%s reference) on %s in %s: relative error %.3e\n",
              meta.at("dtype").c_str(), device.str().c_str(), std::string(dtype_name(dtype)).c_str(), err);
  // bf16 on either side rounds every activation; f32 differs only in summation order.
  const bool any_bf16 = dtype == DType::bf16 || meta.at("dtype") == "bf16";
  EXPECT_LE(err, any_bf16 ? 3e-2 : 1e-4);
}

}  // namespace
}  // namespace ditserve
