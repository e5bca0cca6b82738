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

constexpr const char* kSharedName = "shared.weight";
constexpr const char* kEmbedTokensName = "encoder.embed_tokens.weight";
constexpr const char* kWanEmbeddingName = "token_embedding.weight";

// The tensors of one block; part_name says what each is called in a layout.
enum class Part { q, k, v, o, bias, attn_norm, wi_0, wi_1, wo, ff_norm };

std::string part_name(T5Layout layout, Part part, std::int64_t block) {
  const std::string i = std::to_string(block);
  if (layout == T5Layout::wan) {
    const std::string p = "blocks." + i + ".";
    switch (part) {
      case Part::q: return p + "attn.q.weight";
      case Part::k: return p + "attn.k.weight";
      case Part::v: return p + "attn.v.weight";
      case Part::o: return p + "attn.o.weight";
      case Part::bias: return p + "pos_embedding.embedding.weight";
      case Part::attn_norm: return p + "norm1.weight";
      case Part::wi_0: return p + "ffn.gate.0.weight";  // the GELU branch
      case Part::wi_1: return p + "ffn.fc1.weight";     // the linear branch
      case Part::wo: return p + "ffn.fc2.weight";
      case Part::ff_norm: return p + "norm2.weight";
    }
  }
  const std::string p = "encoder.block." + i + ".";
  switch (part) {
    case Part::q: return p + "layer.0.SelfAttention.q.weight";
    case Part::k: return p + "layer.0.SelfAttention.k.weight";
    case Part::v: return p + "layer.0.SelfAttention.v.weight";
    case Part::o: return p + "layer.0.SelfAttention.o.weight";
    case Part::bias: return p + "layer.0.SelfAttention.relative_attention_bias.weight";
    case Part::attn_norm: return p + "layer.0.layer_norm.weight";
    case Part::wi_0: return p + "layer.1.DenseReluDense.wi_0.weight";
    case Part::wi_1: return p + "layer.1.DenseReluDense.wi_1.weight";
    case Part::wo: return p + "layer.1.DenseReluDense.wo.weight";
    case Part::ff_norm: return p + "layer.1.layer_norm.weight";
  }
  return {};
}

// A shared table: transformers keeps it in block 0, Wan's T5Encoder as `pos_embedding`.
std::string bias_name(T5Layout layout, bool per_layer, std::int64_t block) {
  if (!per_layer && layout == T5Layout::wan) return "pos_embedding.embedding.weight";
  return part_name(layout, Part::bias, per_layer ? block : 0);
}

std::string final_norm_name(T5Layout layout) {
  return layout == T5Layout::wan ? "norm.weight" : "encoder.final_layer_norm.weight";
}

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

T5Config umt5_xxl() {
  T5Config c;
  c.vocab = 256384;
  c.max_tokens = 512;
  c.per_layer_bias = true;
  return c;
}

T5Config umt5_tiny() {
  T5Config c = t5_tiny();
  c.max_tokens = 64;
  c.per_layer_bias = true;
  return c;
}

std::vector<ParamSpec> t5_parameters(const T5Config& c, T5Layout layout) {
  check_config(c);
  const std::int64_t inner = c.heads * c.d_kv;
  const auto inv_sqrt = [](std::int64_t n) {
    return static_cast<float>(1.0 / std::sqrt(double(n)));
  };
  const auto name = [&](Part part, std::int64_t i) { return part_name(layout, part, i); };
  std::vector<ParamSpec> specs;
  specs.push_back({layout == T5Layout::wan ? kWanEmbeddingName : kSharedName,
                   {c.vocab, c.d_model}, ParamInit::normal, 1.0f});
  for (std::int64_t i = 0; i < c.layers; ++i) {
    specs.push_back(
        {name(Part::q, i), {inner, c.d_model}, ParamInit::normal, inv_sqrt(c.d_model * c.d_kv)});
    specs.push_back({name(Part::k, i), {inner, c.d_model}, ParamInit::normal, inv_sqrt(c.d_model)});
    specs.push_back({name(Part::v, i), {inner, c.d_model}, ParamInit::normal, inv_sqrt(c.d_model)});
    specs.push_back({name(Part::o, i), {c.d_model, inner}, ParamInit::normal, inv_sqrt(inner)});
    if (i == 0 || c.per_layer_bias) {
      specs.push_back({bias_name(layout, c.per_layer_bias, i), {c.buckets, c.heads},
                       ParamInit::normal, inv_sqrt(c.d_model)});
    }
    specs.push_back({name(Part::attn_norm, i), {c.d_model}, ParamInit::ones});
    specs.push_back(
        {name(Part::wi_0, i), {c.d_ff, c.d_model}, ParamInit::normal, inv_sqrt(c.d_model)});
    specs.push_back(
        {name(Part::wi_1, i), {c.d_ff, c.d_model}, ParamInit::normal, inv_sqrt(c.d_model)});
    specs.push_back({name(Part::wo, i), {c.d_model, c.d_ff}, ParamInit::normal, inv_sqrt(c.d_ff)});
    specs.push_back({name(Part::ff_norm, i), {c.d_model}, ParamInit::ones});
  }
  specs.push_back({final_norm_name(layout), {c.d_model}, ParamInit::ones});
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
      layout_(weights.contains(kWanEmbeddingName) ? T5Layout::wan : T5Layout::transformers),
      be_(weights.backend()),
      dtype_(weights.dtype()),
      host_(make_backend(Device::cpu(0))) {
  check_config(config_);
  const T5Config& c = config_;
  const std::int64_t inner = c.heads * c.d_kv;
  // T5EncoderModel saves the tied embedding as `shared.weight`; a bare encoder stack as
  // `encoder.embed_tokens.weight`.
  const bool embed_tokens = !weights.contains(kSharedName) && weights.contains(kEmbedTokensName);
  const char* embedding_name = layout_ == T5Layout::wan ? kWanEmbeddingName
                               : embed_tokens               ? kEmbedTokensName
                                                            : kSharedName;
  embedding_ = weights.load(embedding_name, {c.vocab, c.d_model});
  const std::int64_t tables = c.per_layer_bias ? c.layers : 1;
  for (std::int64_t i = 0; i < tables; ++i) {
    bias_tables_.push_back(
        weights.load(bias_name(layout_, c.per_layer_bias, i), {c.buckets, c.heads}));
  }
  const auto load = [&](Part part, std::int64_t i, const Shape& shape) {
    return weights.load(part_name(layout_, part, i), shape);
  };
  blocks_.reserve(static_cast<std::size_t>(c.layers));
  for (std::int64_t i = 0; i < c.layers; ++i) {
    Block b;
    b.attn_norm = load(Part::attn_norm, i, {c.d_model});
    b.qkv = concat(be_,
                   {load(Part::q, i, {inner, c.d_model}), load(Part::k, i, {inner, c.d_model}),
                    load(Part::v, i, {inner, c.d_model})},
                   0);
    b.o = load(Part::o, i, {c.d_model, inner});
    b.ff_norm = load(Part::ff_norm, i, {c.d_model});
    b.wi_0 = load(Part::wi_0, i, {c.d_ff, c.d_model});
    b.wi_1 = load(Part::wi_1, i, {c.d_ff, c.d_model});
    b.wo = load(Part::wo, i, {c.d_model, c.d_ff});
    blocks_.push_back(std::move(b));
  }
  final_norm_ = weights.load(final_norm_name(layout_), {c.d_model});
}

const Tensor& T5Encoder::buckets(std::int64_t length) {
  if (const auto it = bucket_cache_.find(length); it != bucket_cache_.end()) return it->second;
  Tensor ids = Tensor::empty_host({length, length}, DType::i32);
  std::int32_t* out = ids.data<std::int32_t>();
  for (std::int64_t q = 0; q < length; ++q) {
    for (std::int64_t k = 0; k < length; ++k) {
      out[q * length + k] = static_cast<std::int32_t>(
          t5_relative_position_bucket(k - q, config_.buckets, config_.max_distance));
    }
  }
  return bucket_cache_.emplace(length, transfer(*host_, ids, be_)).first->second;
}

Tensor T5Encoder::position_bias(std::size_t table, std::int64_t length) {
  const bool shared = !config_.per_layer_bias;
  if (shared) {
    if (const auto it = shared_bias_cache_.find(length); it != shared_bias_cache_.end()) {
      return it->second;
    }
  }
  // [L, L, heads] -> [1, heads, L, L]; a gather, so the same values as a host-built table.
  const Tensor rows = embedding(be_, bias_tables_[table], buckets(length));
  Tensor bias = contiguous(be_, rows.permute({2, 0, 1})).unsqueeze(0);
  if (shared) shared_bias_cache_.emplace(length, bias);
  return bias;
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

  Tensor h = embedding(be_, embedding_, ids);  // [B, L, d_model]
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    params.bias = position_bias(config_.per_layer_bias ? i : 0, length);
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
