#pragma once
// The T5 v1.1 encoder (transformers' T5EncoderModel): unscaled token embedding, pre-norm
// blocks of self-attention with a learned relative-position bias (from block 0, shared by
// all blocks) and a gated-GELU feed-forward, RMSNorm everywhere, no biases. UMT5 (Wan 2.1's
// text encoder) is the same network with a bias table in every block (per_layer_bias).

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "models/interfaces.h"
#include "models/weights.h"

namespace ditserve {

struct T5Config {
  std::int64_t vocab = 32128;
  std::int64_t d_model = 4096;
  std::int64_t d_ff = 10240;
  std::int64_t d_kv = 64;  // per head; heads * d_kv need not equal d_model
  std::int64_t heads = 64;
  std::int64_t layers = 24;
  std::int64_t buckets = 32;  // relative_attention_num_buckets
  std::int64_t max_distance = 128;
  float eps = 1e-6f;
  // Longest token sequence accepted (the pipeline's padding length; Open-Sora uses 300).
  std::int64_t max_tokens = 300;
  // UMT5: every block owns its relative-position bias table; T5 v1.1 shares block 0's.
  bool per_layer_bias = false;
};

// The public namings of an encoder checkpoint. T5Encoder detects which one it is given.
enum class T5Layout {
  // transformers' T5EncoderModel / UMT5EncoderModel: shared.weight,
  // encoder.block.{i}.layer.0.SelfAttention.q.weight, ..., encoder.final_layer_norm.weight.
  transformers,
  // Wan 2.1's own T5Encoder (models_t5_umt5-xxl-enc-bf16.pth as safetensors):
  // token_embedding.weight, blocks.{i}.attn.q.weight, blocks.{i}.ffn.gate.0.weight,
  // blocks.{i}.pos_embedding.embedding.weight, norm.weight.
  wan,
};

// DeepFloyd/t5-v1_1-xxl, as Open-Sora 1.2 uses it.
T5Config t5_v1_1_xxl();
// The same architecture scaled down for tests and the `tiny` model (2 layers, d_model 64);
// vocab 512 unless the tokenizer in use has another size.
T5Config t5_tiny();
// google/umt5-xxl's encoder as Wan 2.1 uses it: vocab 256384, per-layer biases, 512 tokens.
T5Config umt5_xxl();
// UMT5 scaled down for tests and `tiny-wan` (t5_tiny's sizes, per-layer biases, 64 tokens).
T5Config umt5_tiny();

// Every parameter with its public name and shape, initialised as transformers'
// T5PreTrainedModel._init_weights does (factor 1). The embedding is `shared.weight`;
// T5Encoder also accepts `encoder.embed_tokens.weight` in its place. Both layouts list the
// same tensors in the same order (spec i of one layout is spec i of the other).
std::vector<ParamSpec> t5_parameters(const T5Config& config,
                                     T5Layout layout = T5Layout::transformers);

// transformers' bidirectional _relative_position_bucket for key - query = relative_position,
// including its f32 arithmetic. Result in [0, buckets).
std::int64_t t5_relative_position_bucket(std::int64_t relative_position, std::int64_t buckets,
                                         std::int64_t max_distance);

class T5Encoder final : public TextEncoder {
 public:
  // Loads every parameter through `weights` (in its dtype, on its backend), in the Wan
  // layout when the source holds `token_embedding.weight`, else transformers'. Throws
  // InvalidArgument for an inconsistent config or a missing or mis-shaped tensor.
  // REQUIRES: the loader's backend outlives the encoder; the source need not.
  T5Encoder(const T5Config& config, const WeightLoader& weights);

  std::int64_t hidden_size() const override { return config_.d_model; }
  std::int64_t max_tokens() const override { return config_.max_tokens; }
  // Padding keys (positions >= lengths[b]) are masked out, as transformers does with its
  // attention_mask; every position, padding included, gets an output row.
  Tensor encode(const Tensor& ids, const Tensor& lengths) override;
  const T5Config& config() const { return config_; }
  T5Layout layout() const { return layout_; }

 private:
  struct Block {
    Tensor attn_norm;  // [d_model]
    Tensor qkv;        // [3 * heads * d_kv, d_model]: q, k, v rows stacked
    Tensor o;          // [d_model, heads * d_kv]
    Tensor ff_norm;    // [d_model]
    Tensor wi_0;       // [d_ff, d_model], the GELU branch
    Tensor wi_1;       // [d_ff, d_model], the linear branch
    Tensor wo;         // [d_model, d_ff]
  };

  // i32 [length, length] relative-position buckets on the device, built once per length.
  const Tensor& buckets(std::int64_t length);
  // [1, heads, length, length] in the compute dtype: bias_tables_[table] gathered by bucket.
  Tensor position_bias(std::size_t table, std::int64_t length);

  T5Config config_;
  T5Layout layout_;
  Backend& be_;
  DType dtype_;
  std::unique_ptr<Backend> host_;
  Tensor embedding_;  // [vocab, d_model]
  // [buckets, heads] in the compute dtype: one (shared) or one per block (per_layer_bias).
  std::vector<Tensor> bias_tables_;
  std::vector<Block> blocks_;
  Tensor final_norm_;  // [d_model]
  std::map<std::int64_t, Tensor> bucket_cache_;
  std::map<std::int64_t, Tensor> shared_bias_cache_;  // the shared table's bias per length
};

}  // namespace ditserve
