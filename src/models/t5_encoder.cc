#include "models/t5_encoder.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/attention.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

std::string block_prefix(std::int64_t i) { return "encoder.block." + std::to_string(i) + "."; }

constexpr const char* kSharedName = "shared.weight";
constexpr const char* kEmbedTokensName = "encoder.embed_tokens.weight";
constexpr const char* kBiasName = "layer.0.SelfAttention.relative_attention_bias.weight";

void check_config(const T5Config& c) {
  const auto positive = [](const char* field, std::int64_t value) {
    DITSERVE_CHECK(value > 0, "T5Config.", field, " must be positive, got ", value);
  };
  positive("vocab", c.vocab);
  positive("d_model", c.d_model);
  positive("d_ff", c.d_ff);
  positive("d_kv", c.d_kv);
  positive("heads", c.heads);
  positive("layers", c.layers);
  positive("max_tokens", c.max_tokens);
  DITSERVE_CHECK(c.buckets >= 4 && c.buckets % 2 == 0,
                 "T5Config.buckets must be even and >= 4, got ", c.buckets);
  DITSERVE_CHECK(c.max_distance > c.buckets / 4, "T5Config.max_distance must exceed buckets / 4 (",
                 c.buckets / 4, "), got ", c.max_distance);
  DITSERVE_CHECK(c.eps > 0.0f, "T5Config.eps must be positive, got ", c.eps);
}

// Host copy of a small i32 [n] tensor living on `be`.
std::vector<float> host_values(Backend& be, Backend& host, const Tensor& t) {
  return transfer(be, t, host).to_vector_f32();
}

}  // namespace

T5Config t5_v1_1_xxl() { return T5Config{}; }

T5Config t5_tiny() {
  T5Config c;
  c.vocab = 512;
  c.d_model = 64;
  c.d_ff = 160;
  c.d_kv = 16;
  c.heads = 4;
  c.layers = 2;
  c.max_tokens = 32;
  return c;
}

std::vector<ParamSpec> t5_parameters(const T5Config& c) {
  check_config(c);
  const std::int64_t inner = c.heads * c.d_kv;
  const auto inv_sqrt = [](std::int64_t n) {
    return static_cast<float>(1.0 / std::sqrt(double(n)));
  };
  std::vector<ParamSpec> specs;
  specs.push_back({kSharedName, {c.vocab, c.d_model}, ParamInit::normal, 1.0f});
  for (std::int64_t i = 0; i < c.layers; ++i) {
    const std::string p = block_prefix(i);
    const std::string attn = p + "layer.0.SelfAttention.";
    specs.push_back(
        {attn + "q.weight", {inner, c.d_model}, ParamInit::normal, inv_sqrt(c.d_model * c.d_kv)});
    specs.push_back(
        {attn + "k.weight", {inner, c.d_model}, ParamInit::normal, inv_sqrt(c.d_model)});
    specs.push_back(
        {attn + "v.weight", {inner, c.d_model}, ParamInit::normal, inv_sqrt(c.d_model)});
    specs.push_back({attn + "o.weight", {c.d_model, inner}, ParamInit::normal, inv_sqrt(inner)});
    if (i == 0) {
      specs.push_back(
          {p + kBiasName, {c.buckets, c.heads}, ParamInit::normal, inv_sqrt(c.d_model)});
    }
    specs.push_back({p + "layer.0.layer_norm.weight", {c.d_model}, ParamInit::ones});
    const std::string ff = p + "layer.1.DenseReluDense.";
    specs.push_back(
        {ff + "wi_0.weight", {c.d_ff, c.d_model}, ParamInit::normal, inv_sqrt(c.d_model)});
    specs.push_back(
        {ff + "wi_1.weight", {c.d_ff, c.d_model}, ParamInit::normal, inv_sqrt(c.d_model)});
    specs.push_back({ff + "wo.weight", {c.d_model, c.d_ff}, ParamInit::normal, inv_sqrt(c.d_ff)});
    specs.push_back({p + "layer.1.layer_norm.weight", {c.d_model}, ParamInit::ones});
  }
  specs.push_back({"encoder.final_layer_norm.weight", {c.d_model}, ParamInit::ones});
  return specs;
}

std::int64_t t5_relative_position_bucket(std::int64_t relative_position, std::int64_t buckets,
                                         std::int64_t max_distance) {
  const std::int64_t half = buckets / 2;
  const std::int64_t offset = relative_position > 0 ? half : 0;
  const std::int64_t distance = relative_position < 0 ? -relative_position : relative_position;
  const std::int64_t max_exact = half / 2;
  if (distance < max_exact) return offset + distance;
  // transformers: log(float(d) / max_exact) / math.log(max_distance / max_exact) * (half -
  // max_exact), all in f32 (the Python double is rounded to f32 by the tensor op), then
  // truncated. At the exact powers (d = 16, 32, 64 for the defaults) this gives integers.
  const float ratio = static_cast<float>(distance) / static_cast<float>(max_exact);
  const float span = static_cast<float>(
      std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = std::log(ratio) / span * static_cast<float>(half - max_exact);
  const std::int64_t large = max_exact + static_cast<std::int64_t>(scaled);
  return offset + std::min(large, half - 1);
}

T5Encoder::T5Encoder(const T5Config& config, const WeightLoader& weights)
    : config_(config),
      be_(weights.backend()),
      dtype_(weights.dtype()),
      host_(make_backend(Device::cpu(0))) {
  check_config(config_);
  const T5Config& c = config_;
  const std::int64_t inner = c.heads * c.d_kv;
  // T5EncoderModel saves the tied embedding as `shared.weight`; a bare encoder stack as
  // `encoder.embed_tokens.weight`.
  const char* embedding_name = !weights.contains(kSharedName) && weights.contains(kEmbedTokensName)
                                   ? kEmbedTokensName
                                   : kSharedName;
  embedding_ = weights.load(embedding_name, {c.vocab, c.d_model});
  bias_table_ =
      transfer(be_, weights.load_f32(block_prefix(0) + kBiasName, {c.buckets, c.heads}), *host_);
  blocks_.reserve(static_cast<std::size_t>(c.layers));
  for (std::int64_t i = 0; i < c.layers; ++i) {
    const WeightLoader w = weights.sub(block_prefix(i));
    const WeightLoader attn = w.sub("layer.0.SelfAttention.");
    const WeightLoader ff = w.sub("layer.1.DenseReluDense.");
    Block b;
    b.attn_norm = w.load("layer.0.layer_norm.weight", {c.d_model});
    b.qkv = concat(
        be_,
        {attn.load("q.weight", {inner, c.d_model}), attn.load("k.weight", {inner, c.d_model}),
         attn.load("v.weight", {inner, c.d_model})},
        0);
    b.o = attn.load("o.weight", {c.d_model, inner});
    b.ff_norm = w.load("layer.1.layer_norm.weight", {c.d_model});
    b.wi_0 = ff.load("wi_0.weight", {c.d_ff, c.d_model});
    b.wi_1 = ff.load("wi_1.weight", {c.d_ff, c.d_model});
    b.wo = ff.load("wo.weight", {c.d_model, c.d_ff});
    blocks_.push_back(std::move(b));
  }
  final_norm_ = weights.load("encoder.final_layer_norm.weight", {c.d_model});
}

const Tensor& T5Encoder::position_bias(std::int64_t length) {
  if (const auto it = bias_cache_.find(length); it != bias_cache_.end()) return it->second;
  const std::int64_t heads = config_.heads;
  const float* table = bias_table_.data<float>();  // [buckets, heads]
  Tensor bias = Tensor::empty_host({1, heads, length, length}, DType::f32);
  float* out = bias.data<float>();
  for (std::int64_t q = 0; q < length; ++q) {
    for (std::int64_t k = 0; k < length; ++k) {
      const std::int64_t bucket =
          t5_relative_position_bucket(k - q, config_.buckets, config_.max_distance);
      for (std::int64_t h = 0; h < heads; ++h) {
        out[(h * length + q) * length + k] = table[bucket * heads + h];
      }
    }
  }
  if (dtype_ != DType::f32) bias = cast(*host_, bias, dtype_);
  return bias_cache_.emplace(length, transfer(*host_, bias, be_)).first->second;
}

Tensor T5Encoder::encode(const Tensor& ids, const Tensor& lengths) {
  const T5Config& c = config_;
  DITSERVE_CHECK(ids.defined() && ids.dtype() == DType::i32 && ids.dim() == 2,
                 "T5Encoder::encode: ids must be i32 [B, L], got ",
                 ids.defined() ? ids.describe() : std::string("an undefined tensor"));
  const std::int64_t batch = ids.size(0), length = ids.size(1);
  DITSERVE_CHECK(batch >= 1 && length >= 1, "T5Encoder::encode: ids ", ids.describe(), " is empty");
  DITSERVE_CHECK(length <= c.max_tokens, "T5Encoder::encode: ids has ", length,
                 " tokens per row, at most max_tokens = ", c.max_tokens, " allowed");
  DITSERVE_CHECK(
      lengths.defined() && lengths.dtype() == DType::i32 && lengths.shape() == Shape{batch},
      "T5Encoder::encode: lengths must be i32 [", batch, "], got ",
      lengths.defined() ? lengths.describe() : std::string("an undefined tensor"));
  // Out-of-range values would read outside the embedding table or the keys on a GPU, so
  // they are checked here (a few hundred integers, once per request).
  const std::vector<float> id_values = host_values(be_, *host_, ids);
  for (std::size_t i = 0; i < id_values.size(); ++i) {
    DITSERVE_CHECK(id_values[i] >= 0 && id_values[i] < static_cast<float>(c.vocab),
                   "T5Encoder::encode: ids[", i / length, ", ", i % length, "] = ", id_values[i],
                   " is outside the vocabulary [0, ", c.vocab, ")");
  }
  const std::vector<float> length_values = host_values(be_, *host_, lengths);
  for (std::size_t b = 0; b < length_values.size(); ++b) {
    DITSERVE_CHECK(length_values[b] >= 1 && length_values[b] <= static_cast<float>(length),
                   "T5Encoder::encode: lengths[", b, "] = ", length_values[b], " is outside [1, ",
                   length, "]");
  }

  AttentionParams params;
  params.scale = 1.0f;  // T5 folds the 1/sqrt(d) into its initialisation
  params.key_lengths = lengths;
  params.bias = position_bias(length);

  Tensor h = embedding(be_, embedding_, ids);  // [B, L, d_model]
  for (const Block& b : blocks_) {
    const Tensor n = rms_norm(be_, h, b.attn_norm, c.eps);
    const Tensor qkv = linear(be_, n, b.qkv).view({batch, length, 3, c.heads, c.d_kv});
    const Tensor a = attention(be_, qkv.select(2, 0), qkv.select(2, 1), qkv.select(2, 2), params);
    h = add(be_, h, linear(be_, a.view({batch, length, c.heads * c.d_kv}), b.o));
    const Tensor m = rms_norm(be_, h, b.ff_norm, c.eps);
    const Tensor gate = linear(be_, m, b.wi_0, {}, Activation::gelu_tanh);
    const Tensor up = linear(be_, m, b.wi_1);
    h = add(be_, h, linear(be_, mul(be_, gate, up), b.wo));
  }
  return rms_norm(be_, h, final_norm_, c.eps);
}

}  // namespace ditserve
