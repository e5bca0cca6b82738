#include "models/t5_encoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <numbers>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::HasSubstr;

// Small enough for double loops; 2 layers so that block 1 reusing block 0's position bias
// is covered.
T5Config small_config() {
  T5Config c;
  c.vocab = 64;
  c.d_model = 32;
  c.d_ff = 48;
  c.d_kv = 8;
  c.heads = 4;
  c.layers = 2;
  c.max_tokens = 24;
  return c;
}

// t5_parameters with a position-bias table large enough to matter in the comparison.
std::vector<ParamSpec> test_specs(const T5Config& c) {
  std::vector<ParamSpec> specs = t5_parameters(c);
  for (ParamSpec& s : specs) {
    if (s.name.find("relative_attention_bias") != std::string::npos) s.std = 1.0f;
  }
  return specs;
}

Tensor i32_tensor(const std::vector<std::int32_t>& values, const Shape& shape) {
  Tensor t = Tensor::empty_host(shape, DType::i32);
  std::copy(values.begin(), values.end(), t.data<std::int32_t>());
  return t;
}

// ---- A plain reference of transformers' T5 encoder, in double precision. ----

struct Matrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<double> v;
  double at(std::int64_t r, std::int64_t c) const { return v[r * cols + c]; }
};

Matrix weight(const WeightSource& source, const std::string& name, std::int64_t rows,
              std::int64_t cols) {
  const std::vector<float> f = source.get(name, {rows, cols}).to_vector_f32();
  return {rows, cols, std::vector<double>(f.begin(), f.end())};
}

std::vector<double> vector_weight(const WeightSource& source, const std::string& name,
                                  std::int64_t n) {
  const std::vector<float> f = source.get(name, {n}).to_vector_f32();
  return {f.begin(), f.end()};
}

// rows x d_model -> rows x w.rows: x @ w^T.
std::vector<std::vector<double>> project(const std::vector<std::vector<double>>& x,
                                         const Matrix& w) {
  std::vector<std::vector<double>> y(x.size(), std::vector<double>(w.rows, 0.0));
  for (std::size_t i = 0; i < x.size(); ++i)
    for (std::int64_t o = 0; o < w.rows; ++o)
      for (std::int64_t k = 0; k < w.cols; ++k) y[i][o] += x[i][k] * w.at(o, k);
  return y;
}

std::vector<std::vector<double>> rms(const std::vector<std::vector<double>>& x,
                                     const std::vector<double>& w, double eps) {
  std::vector<std::vector<double>> y = x;
  for (auto& row : y) {
    double ms = 0.0;
    for (double v : row) ms += v * v;
    ms /= static_cast<double>(row.size());
    const double inv = 1.0 / std::sqrt(ms + eps);
    for (std::size_t k = 0; k < row.size(); ++k) row[k] = row[k] * inv * w[k];
  }
  return y;
}

// The textbook bucket rule in double precision (fine away from the exact powers).
std::int64_t reference_bucket(std::int64_t rel, std::int64_t buckets, std::int64_t max_distance) {
  const std::int64_t half = buckets / 2, exact = half / 2;
  const std::int64_t base = rel > 0 ? half : 0;
  const std::int64_t n = std::abs(rel);
  if (n < exact) return base + n;
  const auto large = exact + static_cast<std::int64_t>(std::log(double(n) / exact) /
                                                       std::log(double(max_distance) / exact) *
                                                       double(half - exact));
  return base + std::min(large, half - 1);
}

// Hidden states [B][L][d_model] for ids [B][L] with valid lengths.
std::vector<float> reference_encode(const T5Config& c, const WeightSource& w,
                                    const std::vector<std::vector<std::int32_t>>& ids,
                                    const std::vector<std::int32_t>& lengths) {
  const std::int64_t inner = c.heads * c.d_kv;
  const Matrix embed = weight(w, "shared.weight", c.vocab, c.d_model);
  const Matrix table =
      weight(w, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", c.buckets,
             c.heads);
  std::vector<float> out;
  for (std::size_t b = 0; b < ids.size(); ++b) {
    const std::int64_t L = static_cast<std::int64_t>(ids[b].size());
    std::vector<std::vector<double>> h(L);
    for (std::int64_t i = 0; i < L; ++i) {
      for (std::int64_t d = 0; d < c.d_model; ++d) h[i].push_back(embed.at(ids[b][i], d));
    }
    for (std::int64_t layer = 0; layer < c.layers; ++layer) {
      const std::string p = "encoder.block." + std::to_string(layer) + ".";
      const std::string a = p + "layer.0.SelfAttention.";
      const auto n = rms(h, vector_weight(w, p + "layer.0.layer_norm.weight", c.d_model), c.eps);
      const auto q = project(n, weight(w, a + "q.weight", inner, c.d_model));
      const auto k = project(n, weight(w, a + "k.weight", inner, c.d_model));
      const auto v = project(n, weight(w, a + "v.weight", inner, c.d_model));
      std::vector<std::vector<double>> attn(L, std::vector<double>(inner, 0.0));
      for (std::int64_t head = 0; head < c.heads; ++head) {
        for (std::int64_t i = 0; i < L; ++i) {
          std::vector<double> s(lengths[b]);
          double mx = -1e300;
          for (std::int64_t j = 0; j < lengths[b]; ++j) {
            double dot = 0.0;
            for (std::int64_t d = 0; d < c.d_kv; ++d) {
              dot += q[i][head * c.d_kv + d] * k[j][head * c.d_kv + d];
            }
            s[j] = dot + table.at(reference_bucket(j - i, c.buckets, c.max_distance), head);
            mx = std::max(mx, s[j]);
          }
          double sum = 0.0;
          for (double& x : s) sum += (x = std::exp(x - mx));
          for (std::int64_t j = 0; j < lengths[b]; ++j) {
            for (std::int64_t d = 0; d < c.d_kv; ++d) {
              attn[i][head * c.d_kv + d] += s[j] / sum * v[j][head * c.d_kv + d];
            }
          }
        }
      }
      const auto o = project(attn, weight(w, a + "o.weight", c.d_model, inner));
      for (std::int64_t i = 0; i < L; ++i)
        for (std::int64_t d = 0; d < c.d_model; ++d) h[i][d] += o[i][d];

      const std::string f = p + "layer.1.DenseReluDense.";
      const auto m = rms(h, vector_weight(w, p + "layer.1.layer_norm.weight", c.d_model), c.eps);
      auto gate = project(m, weight(w, f + "wi_0.weight", c.d_ff, c.d_model));
      const auto up = project(m, weight(w, f + "wi_1.weight", c.d_ff, c.d_model));
      for (std::int64_t i = 0; i < L; ++i) {
        for (std::int64_t j = 0; j < c.d_ff; ++j) {
          const double x = gate[i][j];
          const double gelu =
              0.5 * x *
              (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
          gate[i][j] = gelu * up[i][j];
        }
      }
      const auto ff = project(gate, weight(w, f + "wo.weight", c.d_model, c.d_ff));
      for (std::int64_t i = 0; i < L; ++i)
        for (std::int64_t d = 0; d < c.d_model; ++d) h[i][d] += ff[i][d];
    }
    const auto final_h =
        rms(h, vector_weight(w, "encoder.final_layer_norm.weight", c.d_model), c.eps);
    for (const auto& row : final_h) out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

// ---- Tests ----

TEST(T5BucketTest, MatchesTransformersValues) {
  // transformers' _relative_position_bucket (bidirectional, 32 buckets, max distance 128),
  // worked out by hand: 16 buckets per sign (+16 when the key is after the query), exact
  // below 8, then 8 + floor(8 * ln(d / 8) / ln(16)) = 8 + floor(2 * log2(d / 8)), capped
  // at 15. The same values come out of transformers 5.17 / torch 2.11 on CPU and CUDA, and
  // the whole 300 x 300 table agrees with them (checked on the GPU machine).
  const std::map<std::int64_t, std::int64_t> expected = {
      {0, 0},    {1, 17},   {-1, 1},   {7, 23},    {-7, 7},   {8, 24},    {-8, 8},
      {11, 24},  {-11, 8},  {12, 25},  {-12, 9},   {15, 25},  {16, 26},   {-16, 10},
      {22, 26},  {23, 27},  {-23, 11}, {31, 27},   {32, 28},  {-32, 12},  {45, 28},
      {46, 29},  {-46, 13}, {63, 29},  {64, 30},   {-64, 14}, {90, 30},   {91, 31},
      {-91, 15}, {127, 31}, {128, 31}, {-128, 15}, {299, 31}, {-299, 15}, {5000, 31},
  };
  for (const auto& [rel, bucket] : expected) {
    EXPECT_EQ(t5_relative_position_bucket(rel, 32, 128), bucket) << "relative position " << rel;
  }
  // 8 buckets, max distance 16: 4 per sign, exact below 2, then 2 + floor(2 ln(d/2)/ln 8).
  const std::map<std::int64_t, std::int64_t> small = {
      {0, 0}, {1, 5}, {-1, 1}, {2, 6}, {-3, 2}, {5, 6}, {6, 7}, {-6, 3}, {8, 7}, {-16, 3}, {40, 7},
  };
  for (const auto& [rel, bucket] : small) {
    EXPECT_EQ(t5_relative_position_bucket(rel, 8, 16), bucket) << "relative position " << rel;
  }
}

TEST(T5ParametersTest, NamesAndShapes) {
  const std::vector<ParamSpec> xxl = t5_parameters(t5_v1_1_xxl());
  EXPECT_EQ(xxl.size(), 1u + 24u * 9u + 1u + 1u);
  const std::int64_t total = std::accumulate(
      xxl.begin(), xxl.end(), std::int64_t{0},
      [](std::int64_t sum, const ParamSpec& s) { return sum + shape_numel(s.shape); });
  EXPECT_EQ(total, 4762310656);  // T5 v1.1 XXL's encoder (with the shared embedding)
  std::map<std::string, Shape> shapes;
  for (const ParamSpec& s : xxl) shapes[s.name] = s.shape;
  EXPECT_EQ(shapes.at("shared.weight"), (Shape{32128, 4096}));
  EXPECT_EQ(shapes.at("encoder.block.0.layer.0.SelfAttention.q.weight"), (Shape{4096, 4096}));
  EXPECT_EQ(shapes.at("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
            (Shape{32, 64}));
  EXPECT_FALSE(
      shapes.contains("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"));
  EXPECT_EQ(shapes.at("encoder.block.23.layer.1.DenseReluDense.wi_1.weight"), (Shape{10240, 4096}));
  EXPECT_EQ(shapes.at("encoder.block.23.layer.1.DenseReluDense.wo.weight"), (Shape{4096, 10240}));
  EXPECT_EQ(shapes.at("encoder.block.5.layer.1.layer_norm.weight"), (Shape{4096}));
  EXPECT_EQ(shapes.at("encoder.final_layer_norm.weight"), (Shape{4096}));
}

class T5EncoderTest : public ::testing::Test {
 protected:
  T5Config config_ = small_config();
  std::unique_ptr<Backend> cpu_ = make_backend(Device::cpu());
  std::unique_ptr<WeightSource> source_ = random_weights(test_specs(config_), 17);

  Tensor encode(T5Encoder& encoder, const std::vector<std::vector<std::int32_t>>& ids,
                const std::vector<std::int32_t>& lengths) {
    std::vector<std::int32_t> flat;
    for (const auto& row : ids) flat.insert(flat.end(), row.begin(), row.end());
    const auto batch = static_cast<std::int64_t>(ids.size());
    return encoder.encode(i32_tensor(flat, {batch, static_cast<std::int64_t>(ids[0].size())}),
                          i32_tensor(lengths, {batch}));
  }
};

std::vector<std::int32_t> random_ids(std::int64_t n, std::int64_t vocab, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (auto& id : ids) id = static_cast<std::int32_t>(rng() % vocab);
  return ids;
}

TEST_F(T5EncoderTest, MatchesThePlainReference) {
  const WeightLoader loader(*source_, *cpu_, DType::f32);
  T5Encoder encoder(config_, loader);
  EXPECT_EQ(encoder.hidden_size(), 32);
  EXPECT_EQ(encoder.max_tokens(), 24);
  const std::vector<std::vector<std::int32_t>> ids = {random_ids(20, config_.vocab, 1),
                                                      random_ids(20, config_.vocab, 2)};
  const std::vector<std::int32_t> lengths = {20, 13};
  const Tensor out = encode(encoder, ids, lengths);
  ASSERT_EQ(out.shape(), (Shape{2, 20, 32}));
  const std::vector<float> expected = reference_encode(config_, *source_, ids, lengths);
  EXPECT_LE(testing::relative_error(out.to_vector_f32(), expected), 1e-4);
  // The cached position bias serves a second call (and a shorter length builds its own).
  EXPECT_EQ(encode(encoder, ids, lengths).to_vector_f32(), out.to_vector_f32());
  const std::vector<std::vector<std::int32_t>> short_ids = {
      std::vector<std::int32_t>(ids[0].begin(), ids[0].begin() + 5)};
  EXPECT_LE(testing::relative_error(encode(encoder, short_ids, {5}).to_vector_f32(),
                                    reference_encode(config_, *source_, short_ids, {5})),
            1e-4);
}

TEST_F(T5EncoderTest, PaddingContentDoesNotChangeValidTokens) {
  const WeightLoader loader(*source_, *cpu_, DType::f32);
  T5Encoder encoder(config_, loader);
  std::vector<std::int32_t> a = random_ids(12, config_.vocab, 3);
  std::vector<std::int32_t> b = a;
  for (std::size_t i = 7; i < b.size(); ++i) b[i] = static_cast<std::int32_t>((b[i] + 5) % 64);
  const Tensor out = encode(encoder, {a, b}, {7, 7});
  const std::int64_t valid = 7 * 32;
  const std::vector<float> all = out.to_vector_f32();
  const std::vector<float> row_a(all.begin(), all.begin() + valid);
  const std::vector<float> row_b(all.begin() + 12 * 32, all.begin() + 12 * 32 + valid);
  EXPECT_LE(testing::relative_error(row_b, row_a), 1e-6);
  // The mask is what makes that so: counting the padding as valid changes the tokens.
  const std::vector<float> unmasked = encode(encoder, {a, b}, {12, 12}).to_vector_f32();
  EXPECT_GT(testing::relative_error(
                std::vector<float>(unmasked.begin() + 12 * 32, unmasked.begin() + 12 * 32 + valid),
                row_a),
            1e-3);
}

TEST_F(T5EncoderTest, AcceptsEmbedTokensName) {
  std::vector<ParamSpec> renamed = test_specs(config_);
  for (ParamSpec& s : renamed) {
    if (s.name == "shared.weight") s.name = "encoder.embed_tokens.weight";
  }
  // The same values under the other name: a source that serves "shared.weight"'s values.
  class Renaming final : public WeightSource {
   public:
    explicit Renaming(const WeightSource& inner) : inner_(inner) {}
    bool contains(const std::string& name) const override {
      return name != "shared.weight" && inner_.contains(translate(name));
    }
    Tensor get(const std::string& name, const Shape& shape) const override {
      if (name == "shared.weight") throw InvalidArgument("shared.weight absent");
      return inner_.get(translate(name), shape);
    }
    std::string describe() const override { return "renamed"; }

   private:
    static std::string translate(const std::string& name) {
      return name == "encoder.embed_tokens.weight" ? "shared.weight" : name;
    }
    const WeightSource& inner_;
  };
  const Renaming renaming(*source_);
  T5Encoder original(config_, WeightLoader(*source_, *cpu_, DType::f32));
  T5Encoder other(config_, WeightLoader(renaming, *cpu_, DType::f32));
  const std::vector<std::int32_t> ids = random_ids(6, config_.vocab, 4);
  EXPECT_EQ(encode(other, {ids}, {6}).to_vector_f32(),
            encode(original, {ids}, {6}).to_vector_f32());
}

TEST_F(T5EncoderTest, BadInputsNameTheField) {
  T5Encoder encoder(config_, WeightLoader(*source_, *cpu_, DType::f32));
  const auto message = [&](const std::vector<std::int32_t>& ids, std::int64_t length,
                           const std::vector<std::int32_t>& lengths) -> std::string {
    try {
      encoder.encode(i32_tensor(ids, {1, length}), i32_tensor(lengths, {1}));
    } catch (const InvalidArgument& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_THAT(message(std::vector<std::int32_t>(25, 1), 25, {25}), HasSubstr("max_tokens"));
  EXPECT_THAT(message({1, 2, 3}, 3, {0}), HasSubstr("lengths"));
  EXPECT_THAT(message({1, 2, 3}, 3, {4}), HasSubstr("lengths"));
  EXPECT_THAT(message({1, 64, 3}, 3, {3}), HasSubstr("ids"));
  EXPECT_THROW(encoder.encode(Tensor::empty_host({1, 3}, DType::f32), i32_tensor({3}, {1})),
               InvalidArgument);

  // A checkpoint lacking a tensor, or with one of the wrong shape.
  std::vector<ParamSpec> missing = test_specs(config_);
  missing.erase(missing.begin() + 3);  // block 0's v
  const auto no_v = random_weights(missing, 1);
  try {
    T5Encoder broken(config_, WeightLoader(*no_v, *cpu_, DType::f32));
    ADD_FAILURE() << "no error for a missing tensor";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("encoder.block.0.layer.0.SelfAttention.v.weight"));
  }
  T5Config wider = config_;
  wider.d_ff = 50;
  EXPECT_THROW(T5Encoder(wider, WeightLoader(*source_, *cpu_, DType::f32)), InvalidArgument);
}

TEST(T5TinyTest, RunsWithItsOwnParameters) {
  const T5Config tiny = t5_tiny();
  const auto source = random_weights(t5_parameters(tiny), 1);
  const std::unique_ptr<Backend> cpu = make_backend(Device::cpu());
  T5Encoder encoder(tiny, WeightLoader(*source, *cpu, DType::f32));
  const Tensor out = encoder.encode(
      i32_tensor(random_ids(2 * tiny.max_tokens, tiny.vocab, 9), {2, tiny.max_tokens}),
      i32_tensor({static_cast<std::int32_t>(tiny.max_tokens), 3}, {2}));
  ASSERT_EQ(out.shape(), (Shape{2, tiny.max_tokens, tiny.d_model}));
  for (float v : out.to_vector_f32()) ASSERT_TRUE(std::isfinite(v));
}

// Comparison with transformers' T5EncoderModel. bench/reference/t5_reference.py writes the
// file that DITSERVE_T5_REFERENCE names (ids, lengths, hidden states, the config and the
// checkpoint path in its metadata); without it the test is skipped. Runs on cuda:0 in f32
// when there is one, else on the CPU.
TEST(T5ReferenceTest, MatchesTransformers) {
  const char* path = std::getenv("DITSERVE_T5_REFERENCE");
  if (path == nullptr || *path == '\0') GTEST_SKIP() << "DITSERVE_T5_REFERENCE is not set";
  const SafetensorsFile reference(path);
  const auto& meta = reference.metadata();
  const auto field = [&](const char* name) { return std::stoll(meta.at(name)); };
  T5Config config;
  config.vocab = field("vocab");
  config.d_model = field("d_model");
  config.d_ff = field("d_ff");
  config.d_kv = field("d_kv");
  config.heads = field("heads");
  config.layers = field("layers");
  config.buckets = field("buckets");
  config.max_distance = field("max_distance");
  config.eps = std::stof(meta.at("eps"));
  const Tensor ids = reference.get("ids");
  config.max_tokens = ids.size(1);

  const Device device = cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu();
  const std::unique_ptr<Backend> be = make_backend(device);
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  // DITSERVE_T5_CHECKPOINT overrides the recorded path (a file made on another machine).
  const char* moved = std::getenv("DITSERVE_T5_CHECKPOINT");
  const auto checkpoint = open_weight_file(
      moved != nullptr && *moved != '\0' ? std::string(moved) : meta.at("checkpoint"));
  T5Encoder encoder(config, WeightLoader(*checkpoint, *be, DType::f32));
  const Tensor out =
      encoder.encode(transfer(*host, ids, *be), transfer(*host, reference.get("lengths"), *be));
  const Tensor got = transfer(*be, out, *host);
  const double err = testing::relative_error(got, reference.get("hidden"));
  std::printf("T5 vs transformers on %s: relative error %.3e\n", device.str().c_str(), err);
  EXPECT_LE(err, 1e-2);
}

}  // namespace
}  // namespace ditserve
