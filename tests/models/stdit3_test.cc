#include "models/stdit3.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>

#include "io/safetensors.h"
#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

// The STDiT3 stages against a plain double-precision re-implementation of Open-Sora's
// STDiT3 forward (written from its math, loops only), on the tiny config and random
// weights, on the CPU backend.

namespace ditserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using Vec = std::vector<double>;

constexpr std::uint64_t kSeed = 11;

Vec to_vec(const Tensor& t) {
  const std::vector<float> v = t.to_vector_f32();
  return Vec(v.begin(), v.end());
}

double rel_err(const Tensor& got, const Vec& want) {
  const std::vector<float> g = got.to_vector_f32();
  return testing::relative_error(g, std::vector<float>(want.begin(), want.end()));
}

// ---- the reference ------------------------------------------------------------------

// Weights straight from the WeightSource (not through WeightLoader), as doubles.
class RefWeights {
 public:
  RefWeights(const WeightSource& source, const std::vector<ParamSpec>& specs) : source_(source) {
    for (const ParamSpec& s : specs) shapes_[s.name] = s.shape;
  }
  Vec operator()(const std::string& name) const {
    return to_vec(source_.get(name, shapes_.at(name)));
  }

 private:
  const WeightSource& source_;
  std::map<std::string, Shape> shapes_;
};

// y[r, o] = x[r, :] . w[o, :] + b[o]
Vec ref_linear(const Vec& x, std::int64_t in, const Vec& w, const Vec& b) {
  const std::int64_t out = static_cast<std::int64_t>(b.size());
  const std::int64_t rows = static_cast<std::int64_t>(x.size()) / in;
  Vec y(static_cast<std::size_t>(rows * out));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t o = 0; o < out; ++o) {
      double acc = b[o];
      for (std::int64_t k = 0; k < in; ++k) acc += x[r * in + k] * w[o * in + k];
      y[r * out + o] = acc;
    }
  return y;
}

Vec ref_linear(const Vec& x, std::int64_t in, const RefWeights& w, const std::string& name) {
  return ref_linear(x, in, w(name + ".weight"), w(name + ".bias"));
}

double gelu_tanh(double v) {
  return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
}
double silu(double v) { return v / (1.0 + std::exp(-v)); }

// LayerNorm (no affine, eps 1e-6) of one row, then * (1 + scale) + shift.
void ref_modulate(const double* x, double* out, std::int64_t c, const double* shift,
                  const double* scale) {
  double mean = 0, var = 0;
  for (std::int64_t i = 0; i < c; ++i) mean += x[i];
  mean /= static_cast<double>(c);
  for (std::int64_t i = 0; i < c; ++i) var += (x[i] - mean) * (x[i] - mean);
  const double rstd = 1.0 / std::sqrt(var / static_cast<double>(c) + 1e-6);
  for (std::int64_t i = 0; i < c; ++i) out[i] = (x[i] - mean) * rstd * (1.0 + scale[i]) + shift[i];
}

// Softmax attention of one query over `n` keys; q, keys, values index [j * stride + d].
void ref_attend(const double* q, const double* k, const double* v, std::int64_t stride,
                std::int64_t n, std::int64_t d, double* out) {
  Vec s(static_cast<std::size_t>(n));
  double mx = -INFINITY;
  for (std::int64_t j = 0; j < n; ++j) {
    double dot = 0;
    for (std::int64_t e = 0; e < d; ++e) dot += q[e] * k[j * stride + e];
    s[j] = dot / std::sqrt(static_cast<double>(d));
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (double& x : s) sum += (x = std::exp(x - mx));
  for (std::int64_t e = 0; e < d; ++e) {
    double acc = 0;
    for (std::int64_t j = 0; j < n; ++j) acc += s[j] * v[j * stride + e];
    out[e] = acc / sum;
  }
}

struct RefInputs {
  std::int64_t b, f, p, c, heads;
  Vec t_mlp;     // [B, 6C]
  Vec captions;  // [B, L, C] projected
  std::int64_t len;
  std::vector<int> lengths;
  Vec rope_freqs;  // [D/2]
};

// One STDiT3Block on tokens [B, F, P, C]; `prefix` e.g. "spatial_blocks.0.".
Vec ref_block(const RefWeights& w, const std::string& prefix, bool temporal, const Vec& x,
              const RefInputs& in) {
  const std::int64_t B = in.b, F = in.f, P = in.p, C = in.c, H = in.heads, D = C / H;
  const std::int64_t N = F * P;
  const Vec table = w(prefix + "scale_shift_table");
  Vec mod(static_cast<std::size_t>(B * 6 * C));
  for (std::int64_t i = 0; i < B * 6 * C; ++i) mod[i] = table[i % (6 * C)] + in.t_mlp[i];
  const auto chunk = [&](std::int64_t bi, int k) { return &mod[(bi * 6 + k) * C]; };
  const auto tok = [&](std::int64_t bi, std::int64_t fi, std::int64_t pi) {
    return (bi * F + fi) * P + pi;
  };

  // Self-attention.
  Vec h(x.size());
  for (std::int64_t bi = 0; bi < B; ++bi)
    for (std::int64_t n = 0; n < N; ++n) {
      const std::int64_t r = bi * N + n;
      ref_modulate(&x[r * C], &h[r * C], C, chunk(bi, 0), chunk(bi, 1));
    }
  Vec qkv = ref_linear(h, C, w, prefix + "attn.qkv");  // [tokens, 3, H, D]
  const Vec qn = w(prefix + "attn.q_norm.weight"), kn = w(prefix + "attn.k_norm.weight");
  for (std::int64_t r = 0; r < B * N; ++r)
    for (int part = 0; part < 2; ++part)
      for (std::int64_t hd = 0; hd < H; ++hd) {
        double* v = &qkv[r * 3 * C + part * C + hd * D];
        double ms = 0;
        for (std::int64_t e = 0; e < D; ++e) ms += v[e] * v[e];
        const double inv = 1.0 / std::sqrt(ms / static_cast<double>(D) + 1e-6);
        for (std::int64_t e = 0; e < D; ++e) v[e] *= inv * (part == 0 ? qn[e] : kn[e]);
        if (temporal) {  // interleaved pairs rotate by frame index * freq
          const std::int64_t frame = (r % N) / P;
          for (std::int64_t i = 0; i < D / 2; ++i) {
            const double a = static_cast<double>(frame) * in.rope_freqs[i];
            const double x0 = v[2 * i], x1 = v[2 * i + 1];
            v[2 * i] = x0 * std::cos(a) - x1 * std::sin(a);
            v[2 * i + 1] = x1 * std::cos(a) + x0 * std::sin(a);
          }
        }
      }
  Vec attn(x.size());
  // Spatial: sequences (b, f) over p. Temporal: sequences (b, p) over f.
  const std::int64_t groups_outer = B, groups_inner = temporal ? P : F, seq = temporal ? F : P;
  for (std::int64_t bi = 0; bi < groups_outer; ++bi)
    for (std::int64_t g = 0; g < groups_inner; ++g) {
      // Gather the sequence's rows (strided in token order) into a dense buffer.
      Vec buf(static_cast<std::size_t>(seq * 3 * C));
      for (std::int64_t s = 0; s < seq; ++s) {
        const std::int64_t r = temporal ? tok(bi, s, g) : tok(bi, g, s);
        std::copy(&qkv[r * 3 * C], &qkv[(r + 1) * 3 * C], &buf[s * 3 * C]);
      }
      for (std::int64_t s = 0; s < seq; ++s) {
        const std::int64_t r = temporal ? tok(bi, s, g) : tok(bi, g, s);
        for (std::int64_t hd = 0; hd < H; ++hd)
          ref_attend(&buf[s * 3 * C + hd * D], &buf[C + hd * D], &buf[2 * C + hd * D], 3 * C,
                     seq, D, &attn[r * C + hd * D]);
      }
    }
  attn = ref_linear(attn, C, w, prefix + "attn.proj");
  Vec x1 = x;
  for (std::int64_t r = 0; r < B * N; ++r)
    for (std::int64_t i = 0; i < C; ++i) x1[r * C + i] += chunk(r / N, 2)[i] * attn[r * C + i];

  // Cross-attention, no gate: sample b's tokens attend to its first lengths[b] captions.
  const Vec q = ref_linear(x1, C, w, prefix + "cross_attn.q_linear");
  const Vec kv = ref_linear(in.captions, C, w, prefix + "cross_attn.kv_linear");  // [B, L, 2, H, D]
  Vec cross(x.size());
  for (std::int64_t r = 0; r < B * N; ++r) {
    const std::int64_t bi = r / N;
    const double* keys = &kv[bi * in.len * 2 * C];
    for (std::int64_t hd = 0; hd < H; ++hd)
      ref_attend(&q[r * C + hd * D], keys + hd * D, keys + C + hd * D, 2 * C, in.lengths[bi], D,
                 &cross[r * C + hd * D]);
  }
  cross = ref_linear(cross, C, w, prefix + "cross_attn.proj");
  for (std::size_t i = 0; i < x1.size(); ++i) x1[i] += cross[i];

  // MLP.
  Vec m(x.size());
  for (std::int64_t r = 0; r < B * N; ++r)
    ref_modulate(&x1[r * C], &m[r * C], C, chunk(r / N, 3), chunk(r / N, 4));
  m = ref_linear(m, C, w, prefix + "mlp.fc1");
  for (double& v : m) v = gelu_tanh(v);
  m = ref_linear(m, static_cast<std::int64_t>(m.size()) / (B * N), w, prefix + "mlp.fc2");
  for (std::int64_t r = 0; r < B * N; ++r)
    for (std::int64_t i = 0; i < C; ++i) x1[r * C + i] += chunk(r / N, 5)[i] * m[r * C + i];
  return x1;
}

// TimestepEmbedder / SizeEmbedder: [cos(t f), sin(t f)] -> Linear -> SiLU -> Linear.
Vec ref_embed_scalar(const RefWeights& w, const std::string& prefix, const Vec& values) {
  const std::int64_t half = 128;
  Vec freq;
  for (double t : values)
    for (int part = 0; part < 2; ++part)
      for (std::int64_t i = 0; i < half; ++i) {
        const double a = t * std::exp(-std::log(10000.0) * static_cast<double>(i) / half);
        freq.push_back(part == 0 ? std::cos(a) : std::sin(a));
      }
  Vec h = ref_linear(freq, 2 * half, w, prefix + "mlp.0");
  for (double& v : h) v = silu(v);
  return ref_linear(h, static_cast<std::int64_t>(h.size() / values.size()), w, prefix + "mlp.2");
}

// ---- fixture ------------------------------------------------------------------------

// random_weights() with the zero biases and unit norm weights replaced by random values,
// so that every bias and norm weight is exercised by the comparisons.
class DenseRandomSource final : public WeightSource {
 public:
  DenseRandomSource(const std::vector<ParamSpec>& specs, std::uint64_t seed)
      : base_(random_weights(specs, seed)) {
    for (const ParamSpec& s : specs) inits_[s.name] = s.init;
  }
  bool contains(const std::string& name) const override { return base_->contains(name); }
  Tensor get(const std::string& name, const Shape& expected) const override {
    const auto it = inits_.find(name);
    if (it == inits_.end() || it->second == ParamInit::normal) return base_->get(name, expected);
    const auto seed = static_cast<std::uint32_t>(std::hash<std::string>{}(name));
    return it->second == ParamInit::ones ? testing::random_tensor(expected, seed, 0.5f, 1.5f)
                                         : testing::random_tensor(expected, seed, -0.5f, 0.5f);
  }
  std::string describe() const override { return "dense " + base_->describe(); }

 private:
  std::unique_ptr<WeightSource> base_;
  std::map<std::string, ParamInit> inits_;
};

class STDiT3Test : public ::testing::Test {
 protected:
  STDiT3Test()
      : config_(stdit3_tiny()),
        specs_(stdit3_parameters(config_)),
        source_(std::make_unique<DenseRandomSource>(specs_, kSeed)),
        be_(make_backend(Device::cpu())),
        model_(config_, WeightLoader(*source_, *be_, DType::f32)),
        ref_(*source_, specs_) {}

  // B=2 samples of a 16-frame 64x64 video: latents [2, 4, 5, 8, 8], captions of 6 tokens.
  DenoiseInputs inputs(const Shape& latent_shape = {2, 4, 5, 8, 8}) const {
    const std::int64_t b = latent_shape[0];
    DenoiseInputs in;
    in.latents = testing::random_tensor(latent_shape, 1);
    std::vector<float> ts = {500.0f, 937.5f, 12.0f};
    ts.resize(static_cast<std::size_t>(b), 250.0f);
    in.timesteps = Tensor::from_vector(ts, {b});
    in.captions = testing::random_tensor({b, 6, config_.caption_channels}, 2);
    in.caption_lengths = lengths(b == 1 ? std::vector<float>{4} : std::vector<float>{6, 3});
    in.fps = 24.0f;
    in.height = 64;
    in.width = 64;
    return in;
  }

  static Tensor lengths(const std::vector<float>& values) {
    Tensor out = Tensor::empty_host({static_cast<std::int64_t>(values.size())}, DType::i32);
    for (std::size_t i = 0; i < values.size(); ++i)
      out.data<std::int32_t>()[i] = static_cast<std::int32_t>(values[i]);
    return out;
  }

  RefInputs ref_inputs(const STDiT3Step& step, std::int64_t frames, std::int64_t positions,
                       const DenoiseInputs& in) const {
    RefInputs r;
    r.b = step.batch;
    r.f = frames;
    r.p = positions;
    r.c = config_.hidden_size;
    r.heads = config_.num_heads;
    r.t_mlp = ref_t_mlp(in);
    r.len = in.captions.size(1);
    r.captions = ref_captions(in);
    for (float v : in.caption_lengths.to_vector_f32()) r.lengths.push_back(static_cast<int>(v));
    r.rope_freqs = ref_("rope.freqs");
    return r;
  }

  Vec ref_t(const DenoiseInputs& in) const {
    const Vec t = ref_embed_scalar(ref_, "t_embedder.", to_vec(in.timesteps));
    const Vec f = ref_embed_scalar(ref_, "fps_embedder.", Vec(t.size() / config_.hidden_size, in.fps));
    Vec sum(t.size());
    for (std::size_t i = 0; i < t.size(); ++i) sum[i] = t[i] + f[i];
    return sum;
  }

  Vec ref_t_mlp(const DenoiseInputs& in) const {
    Vec t = ref_t(in);
    for (double& v : t) v = silu(v);
    return ref_linear(t, config_.hidden_size, ref_, "t_block.1");
  }

  Vec ref_captions(const DenoiseInputs& in) const {
    Vec h = ref_linear(to_vec(in.captions), config_.caption_channels, ref_, "y_embedder.y_proj.fc1");
    for (double& v : h) v = gelu_tanh(v);
    return ref_linear(h, config_.hidden_size, ref_, "y_embedder.y_proj.fc2");
  }

  STDiT3Config config_;
  std::vector<ParamSpec> specs_;
  std::unique_ptr<WeightSource> source_;
  std::unique_ptr<Backend> be_;
  STDiT3 model_;
  RefWeights ref_;
};

// ---- parameters ---------------------------------------------------------------------

TEST(STDiT3Params, XL2MatchesOpenSoraStateDict) {
  const std::vector<ParamSpec> specs = stdit3_parameters(stdit3_xl_2());
  std::map<std::string, Shape> by_name;
  std::int64_t params = 0;
  for (const ParamSpec& s : specs) {
    EXPECT_TRUE(by_name.emplace(s.name, s.shape).second) << "duplicate " << s.name;
    if (s.name != "y_embedder.y_embedding") params += shape_numel(s.shape);
  }
  EXPECT_EQ(specs.size(), 21u + 56u * 17u);
  EXPECT_EQ(params, 1207643972);  // STDiT3-XL/2's parameter count
  const std::map<std::string, Shape> expected = {
      {"x_embedder.proj.weight", {1152, 4, 1, 2, 2}},
      {"t_embedder.mlp.0.weight", {1152, 256}},
      {"t_embedder.mlp.2.weight", {1152, 1152}},
      {"fps_embedder.mlp.0.bias", {1152}},
      {"t_block.1.weight", {6912, 1152}},
      {"y_embedder.y_embedding", {300, 4096}},
      {"y_embedder.y_proj.fc1.weight", {1152, 4096}},
      {"y_embedder.y_proj.fc2.weight", {1152, 1152}},
      {"rope.freqs", {36}},
      {"final_layer.scale_shift_table", {2, 1152}},
      {"final_layer.linear.weight", {32, 1152}},
      {"spatial_blocks.0.scale_shift_table", {6, 1152}},
      {"spatial_blocks.27.attn.qkv.weight", {3456, 1152}},
      {"temporal_blocks.27.attn.q_norm.weight", {72}},
      {"temporal_blocks.3.attn.k_norm.weight", {72}},
      {"temporal_blocks.0.attn.proj.bias", {1152}},
      {"temporal_blocks.0.cross_attn.q_linear.weight", {1152, 1152}},
      {"temporal_blocks.0.cross_attn.kv_linear.weight", {2304, 1152}},
      {"spatial_blocks.5.cross_attn.proj.weight", {1152, 1152}},
      {"spatial_blocks.5.mlp.fc1.weight", {4608, 1152}},
      {"spatial_blocks.5.mlp.fc2.weight", {1152, 4608}},
  };
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(by_name.count(name)) << name;
    EXPECT_EQ(by_name[name], shape) << name;
  }
  for (const ParamSpec& s : specs) {
    if (s.name.ends_with("norm.weight")) {
      EXPECT_EQ(s.init, ParamInit::ones) << s.name;
    } else if (s.name.ends_with(".bias")) {
      EXPECT_EQ(s.init, ParamInit::zeros) << s.name;
    } else if (s.name.ends_with("scale_shift_table")) {
      EXPECT_NEAR(s.std, 1.0 / std::sqrt(1152.0), 1e-6) << s.name;
    } else if (s.name.ends_with(".weight")) {
      EXPECT_EQ(s.init, ParamInit::normal) << s.name;
      EXPECT_FLOAT_EQ(s.std, 0.02f) << s.name;
    }
  }
}

TEST(STDiT3Params, ConfigValidationNamesTheField) {
  STDiT3Config c = stdit3_tiny();
  c.num_heads = 5;
  EXPECT_THAT([&] { stdit3_parameters(c); },
              ::testing::ThrowsMessage<InvalidArgument>(HasSubstr("num_heads")));
}

// ---- stages -------------------------------------------------------------------------

TEST_F(STDiT3Test, ShapesThroughEveryStage) {
  const DenoiseInputs in = inputs();
  const STDiT3Step step = model_.prepare(in);
  EXPECT_EQ(step.grid, (std::array<std::int64_t, 3>{5, 4, 4}));
  EXPECT_EQ(step.t.shape(), (Shape{2, 64}));
  EXPECT_EQ(step.t_mlp.shape(), (Shape{2, 6 * 64}));
  EXPECT_EQ(step.captions.shape(), (Shape{2, 6, 64}));
  EXPECT_EQ(step.pos_embed.shape(), (Shape{16, 64}));
  EXPECT_EQ(step.rope_angles.shape(), (Shape{5, 8}));
  Tensor x = model_.embed(in.latents, step);
  EXPECT_EQ(x.shape(), (Shape{2, 5, 16, 64}));
  for (std::int64_t i = 0; i < config_.depth; ++i) {
    x = model_.spatial_block(i, x, step);
    EXPECT_EQ(x.shape(), (Shape{2, 5, 16, 64}));
    x = model_.temporal_block(i, x, step);
    EXPECT_EQ(x.shape(), (Shape{2, 5, 16, 64}));
  }
  const Tensor out = model_.final(x, step);
  EXPECT_EQ(out.shape(), (Shape{2, 8, 5, 8, 8}));
  EXPECT_EQ(out.dtype(), DType::f32);
  for (float v : out.to_vector_f32()) ASSERT_TRUE(std::isfinite(v));

  const Tensor velocity = model_.forward(in);
  EXPECT_EQ(velocity.shape(), (Shape{2, 4, 5, 8, 8}));
  EXPECT_EQ(model_.latent_channels(), 4);
  // forward() is the first 4 channels of the full prediction, and the staged path above.
  const Tensor full = model_.forward_full(in);
  EXPECT_EQ(full.to_vector_f32(), out.to_vector_f32());
  EXPECT_EQ(velocity.to_vector_f32(), contiguous(*be_, full.narrow(1, 0, 4)).to_vector_f32());
}

TEST_F(STDiT3Test, PrepareMatchesReference) {
  const DenoiseInputs in = inputs();
  model_.prepare(inputs({1, 4, 3, 7, 5}));  // 3 frames first: the RoPE cache must follow
  const STDiT3Step step = model_.prepare(in);
  EXPECT_LE(rel_err(step.t, ref_t(in)), 1e-5);
  EXPECT_LE(rel_err(step.t_mlp, ref_t_mlp(in)), 1e-5);
  EXPECT_LE(rel_err(step.captions, ref_captions(in)), 1e-5);
  // Temporal RoPE: angle = frame * rope.freqs[i] (the checkpoint's values).
  const Vec freqs = ref_("rope.freqs");
  Vec angles;
  for (int f = 0; f < 5; ++f)
    for (double v : freqs) angles.push_back(f * v);
  EXPECT_LE(rel_err(step.rope_angles, angles), 1e-6);
}

TEST_F(STDiT3Test, PositionTableEncodesColumnsFirst) {
  // 64x64 pixels: scale = 64 / 512; grid 4x4 so base_size = 4 and p = index / scale.
  // (A step on another grid first: the model's table cache must follow the grid.)
  model_.prepare(inputs({1, 4, 3, 7, 5}));
  const STDiT3Step step = model_.prepare(inputs());
  const std::vector<float> pos = step.pos_embed.to_vector_f32();
  const std::int64_t c = 64, q = c / 4;
  for (std::int64_t row = 0; row < 4; ++row)
    for (std::int64_t col = 0; col < 4; ++col)
      for (std::int64_t k = 0; k < q; ++k) {
        const double f = std::pow(10000.0, -2.0 * k / (c / 2));
        const double pc = col / 0.125, pr = row / 0.125;
        const float* e = &pos[(row * 4 + col) * c];
        ASSERT_NEAR(e[k], std::sin(pc * f), 2e-4) << row << "," << col << "," << k;
        ASSERT_NEAR(e[q + k], std::cos(pc * f), 2e-4);
        ASSERT_NEAR(e[2 * q + k], std::sin(pr * f), 2e-4);
        ASSERT_NEAR(e[3 * q + k], std::cos(pr * f), 2e-4);
      }
}

TEST_F(STDiT3Test, EmbedPadsAndMatchesReference) {
  // H=7, W=5 are not multiples of the patch: Open-Sora zero-pads at the end.
  const DenoiseInputs in = inputs({1, 4, 3, 7, 5});
  const STDiT3Step step = model_.prepare(in);
  ASSERT_EQ(step.grid, (std::array<std::int64_t, 3>{3, 4, 3}));
  const Tensor tokens = model_.embed(in.latents, step);
  ASSERT_EQ(tokens.shape(), (Shape{1, 3, 12, 64}));
  const Vec w = ref_("x_embedder.proj.weight"), bias = ref_("x_embedder.proj.bias");
  const Vec lat = to_vec(in.latents), pos = to_vec(step.pos_embed);
  Vec want;
  for (std::int64_t t = 0; t < 3; ++t)
    for (std::int64_t r = 0; r < 4; ++r)
      for (std::int64_t col = 0; col < 3; ++col)
        for (std::int64_t o = 0; o < 64; ++o) {
          double acc = bias[o] + pos[(r * 3 + col) * 64 + o];
          for (std::int64_t ci = 0; ci < 4; ++ci)
            for (std::int64_t kh = 0; kh < 2; ++kh)
              for (std::int64_t kw = 0; kw < 2; ++kw) {
                const std::int64_t y = r * 2 + kh, x = col * 2 + kw;
                if (y >= 7 || x >= 5) continue;
                acc += w[((o * 4 + ci) * 2 + kh) * 2 + kw] * lat[((ci * 3 + t) * 7 + y) * 5 + x];
              }
          want.push_back(acc);
        }
  EXPECT_LE(rel_err(tokens, want), 1e-5);
}

TEST_F(STDiT3Test, SpatialBlockMatchesReference) {
  const DenoiseInputs in = inputs();
  const STDiT3Step step = model_.prepare(in);
  const Tensor x = testing::random_tensor({2, 5, 16, 64}, 3);
  const Tensor got = model_.spatial_block(1, x, step);
  const Vec want = ref_block(ref_, "spatial_blocks.1.", false, to_vec(x), ref_inputs(step, 5, 16, in));
  EXPECT_LE(rel_err(got, want), 1e-4);
}

TEST_F(STDiT3Test, TemporalBlockMatchesReference) {
  const DenoiseInputs in = inputs();
  const STDiT3Step step = model_.prepare(in);
  const Tensor x = testing::random_tensor({2, 5, 16, 64}, 4);
  const Tensor got = model_.temporal_block(0, x, step);
  const Vec want = ref_block(ref_, "temporal_blocks.0.", true, to_vec(x), ref_inputs(step, 5, 16, in));
  EXPECT_LE(rel_err(got, want), 1e-4);
}

TEST_F(STDiT3Test, FinalLayerMatchesReferenceAndUnpatchifyOrder) {
  // Odd H and W: the output is cropped back to the latent size.
  const DenoiseInputs in = inputs({1, 4, 3, 7, 5});
  const STDiT3Step step = model_.prepare(in);
  const Tensor x = testing::random_tensor({1, 3, 12, 64}, 5);
  const Tensor got = model_.final(x, step);
  ASSERT_EQ(got.shape(), (Shape{1, 8, 3, 7, 5}));
  const Vec table = ref_("final_layer.scale_shift_table");
  const Vec t = ref_t(in);
  Vec shift(64), scale(64);
  for (int i = 0; i < 64; ++i) {
    shift[i] = table[i] + t[i];  // uses t, not t_mlp
    scale[i] = table[64 + i] + t[i];
  }
  const Vec xs = to_vec(x);
  Vec h(xs.size());
  for (std::int64_t r = 0; r < 36; ++r) ref_modulate(&xs[r * 64], &h[r * 64], 64, shift.data(), scale.data());
  const Vec y = ref_linear(h, 64, ref_, "final_layer.linear");  // [36 tokens, 32]
  Vec want(static_cast<std::size_t>(8 * 3 * 7 * 5));
  for (std::int64_t c = 0; c < 8; ++c)
    for (std::int64_t f = 0; f < 3; ++f)
      for (std::int64_t yy = 0; yy < 7; ++yy)
        for (std::int64_t xx = 0; xx < 5; ++xx) {
          const std::int64_t token = (f * 4 + yy / 2) * 3 + xx / 2;
          const std::int64_t feature = ((yy % 2) * 2 + xx % 2) * 8 + c;  // (hp*2 + wp)*8 + c
          want[((c * 3 + f) * 7 + yy) * 5 + xx] = y[token * 32 + feature];
        }
  EXPECT_LE(rel_err(got, want), 1e-5);
}

TEST_F(STDiT3Test, BlocksRunOnShardsOfTheTokenGrid) {
  const STDiT3Step step = model_.prepare(inputs());
  const Tensor x = testing::random_tensor({2, 5, 16, 64}, 6);
  // Spatial blocks on a subset of frames, temporal blocks on a subset of positions.
  const Tensor spatial = model_.spatial_block(0, x, step);
  const Tensor spatial_part = model_.spatial_block(0, contiguous(*be_, x.narrow(1, 1, 3)), step);
  EXPECT_LE(testing::relative_error(spatial_part, contiguous(*be_, spatial.narrow(1, 1, 3))), 1e-6);
  const Tensor temporal = model_.temporal_block(1, x, step);
  const Tensor temporal_part = model_.temporal_block(1, x.narrow(2, 5, 7), step);
  EXPECT_LE(testing::relative_error(temporal_part, contiguous(*be_, temporal.narrow(2, 5, 7))), 1e-6);
  // Shards that do not fit the step are refused.
  EXPECT_THAT([&] { model_.spatial_block(0, contiguous(*be_, x.narrow(2, 0, 8)), step); },
              ::testing::ThrowsMessage<InvalidArgument>(HasSubstr("whole frames")));
  EXPECT_THAT([&] { model_.temporal_block(0, contiguous(*be_, x.narrow(1, 0, 4)), step); },
              ::testing::ThrowsMessage<InvalidArgument>(HasSubstr("all 5 frames")));
}

TEST_F(STDiT3Test, DeterministicAndFast) {
  const DenoiseInputs in = inputs();
  const auto start = std::chrono::steady_clock::now();
  const Tensor a = model_.forward(in);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Tensor b = model_.forward(in);
  EXPECT_EQ(a.to_vector_f32(), b.to_vector_f32());
  EXPECT_LT(seconds, 1.0);
  // And depends on the timestep.
  DenoiseInputs other = inputs();
  other.timesteps = Tensor::from_vector({100.0f, 937.5f}, {2});
  EXPECT_GT(testing::relative_error(model_.forward(other), a), 1e-3);
}

TEST_F(STDiT3Test, CaptionTokensBeyondLengthsAreIgnored) {
  const DenoiseInputs in = inputs();  // lengths {6, 3}
  const Tensor base = model_.forward(in);
  // Change sample 1's tokens 3..5 (masked): nothing changes.
  DenoiseInputs masked = inputs();
  masked.captions = contiguous(*be_, in.captions);
  const Tensor noise = testing::random_tensor({1, 3, config_.caption_channels}, 9, -5.0f, 5.0f);
  copy_into(*be_, masked.captions.narrow(0, 1, 1).narrow(1, 3, 3), noise);
  EXPECT_LE(testing::relative_error(model_.forward(masked), base), 1e-6);
  // Change its token 2 (attended): the output changes.
  DenoiseInputs attended = inputs();
  attended.captions = contiguous(*be_, in.captions);
  copy_into(*be_, attended.captions.narrow(0, 1, 1).narrow(1, 2, 1),
            testing::random_tensor({1, 1, config_.caption_channels}, 10, -5.0f, 5.0f));
  EXPECT_GT(testing::relative_error(model_.forward(attended), base), 1e-4);
}

TEST_F(STDiT3Test, NullCaptionsAreTheYEmbeddingRows) {
  const Tensor null = model_.null_captions(7);
  ASSERT_EQ(null.shape(), (Shape{1, 7, 32}));
  const Vec all = ref_("y_embedder.y_embedding");
  EXPECT_LE(rel_err(null, Vec(all.begin(), all.begin() + 7 * 32)), 1e-7);
  EXPECT_THROW(model_.null_captions(301), InvalidArgument);
}

TEST_F(STDiT3Test, BadInputsNameTheField) {
  const auto expect_error = [&](const DenoiseInputs& in, const std::string& field) {
    EXPECT_THAT([&] { model_.forward(in); },
                ::testing::ThrowsMessage<InvalidArgument>(HasSubstr(field)));
  };
  DenoiseInputs in = inputs();
  in.latents = testing::random_tensor({2, 3, 5, 8, 8}, 1);
  expect_error(in, "latents");
  in = inputs();
  in.captions = testing::random_tensor({2, 6, 16}, 1);
  expect_error(in, "captions");
  in = inputs();
  in.caption_lengths = lengths({6, 7});
  expect_error(in, "caption_lengths");
  in.caption_lengths = lengths({0, 3});
  expect_error(in, "caption_lengths");
  in = inputs();
  in.timesteps = Tensor::from_vector({1.0f}, {1});
  expect_error(in, "timesteps");
  in = inputs();
  in.height = 0;
  expect_error(in, "height");
  in = inputs();
  in.fps = 0;
  expect_error(in, "fps");
}

// What producers of GPU caption_lengths call on their host values (models check the values
// of CPU tensors only).
TEST(CaptionLengthsCheck, NamesTheFieldAndTheAllowedRange) {
  const auto i32 = [](std::vector<std::int32_t> v) {
    Tensor t = Tensor::empty_host({static_cast<std::int64_t>(v.size())}, DType::i32);
    std::copy(v.begin(), v.end(), t.data<std::int32_t>());
    return t;
  };
  EXPECT_NO_THROW(check_caption_lengths("encode", i32({1, 6}), 6));
  EXPECT_THAT([&] { check_caption_lengths("encode", i32({6, 7}), 6); },
              ::testing::ThrowsMessage<InvalidArgument>(
                  AllOf(HasSubstr("encode: caption_lengths holds 7"), HasSubstr("allowed 1..6"))));
  EXPECT_THAT([&] { check_caption_lengths("encode", i32({0}), 6); },
              ::testing::ThrowsMessage<InvalidArgument>(HasSubstr("caption_lengths holds 0")));
  EXPECT_THAT([&] { check_caption_lengths("encode", Tensor::from_vector({3.0f}, {1}), 6); },
              ::testing::ThrowsMessage<InvalidArgument>(HasSubstr("caption_lengths must be i32")));
}

// Against bench/reference/stdit3_reference.py (plain PyTorch): replays the --output file
// that DITSERVE_STDIT3_REFERENCE names (inputs, output, and config/checkpoint/dtype in its
// metadata; DITSERVE_STDIT3_CHECKPOINT overrides the checkpoint path); skipped without it.
// Runs on cuda:0 when there is one, else on the CPU (f32 only).
TEST(STDiT3ReferenceTest, MatchesPyTorch) {
  const char* path = std::getenv("DITSERVE_STDIT3_REFERENCE");
  if (path == nullptr || *path == '\0') GTEST_SKIP() << "DITSERVE_STDIT3_REFERENCE is not set";
  const SafetensorsFile reference(path);
  const auto& meta = reference.metadata();
  const STDiT3Config config = meta.at("config") == "xl2" ? stdit3_xl_2() : stdit3_tiny();
  const DType dtype = parse_dtype(meta.at("dtype"));
  const Device device = cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu();
  if (device.is_cpu() && dtype != DType::f32) GTEST_SKIP() << "a bf16 reference needs a GPU";
  const std::unique_ptr<Backend> be = make_backend(device);
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const char* moved = std::getenv("DITSERVE_STDIT3_CHECKPOINT");
  const auto checkpoint = open_weight_file(
      moved != nullptr && *moved != '\0' ? std::string(moved) : meta.at("checkpoint"));
  STDiT3 model(config, WeightLoader(*checkpoint, *be, dtype));
  const auto on_device = [&](const char* name) { return transfer(*host, reference.get(name), *be); };
  DenoiseInputs in;
  in.latents = on_device("latents");
  in.timesteps = on_device("timesteps");
  in.captions = on_device("captions");
  in.caption_lengths = on_device("caption_lengths");
  in.fps = reference.get("fps").item_f32({0});
  in.height = static_cast<std::int64_t>(reference.get("height").item_f32({0}));
  in.width = static_cast<std::int64_t>(reference.get("width").item_f32({0}));
  const Tensor got = transfer(*be, model.forward_full(in), *host);
  const double err = testing::relative_error(got, reference.get("output"));
  std::printf("STDiT3 vs PyTorch (%s) on %s: relative error %.3e\n", meta.at("dtype").c_str(),
              device.str().c_str(), err);
  EXPECT_LE(err, dtype == DType::f32 ? 1e-4 : 2e-2);
}

}  // namespace
}  // namespace ditserve
