#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "models/t5_encoder.h"
#include "support/random.h"
#include "support/renamed_source.h"
#include "tensor/error.h"

// UMT5 (Wan 2.1's text encoder) through T5Encoder: a relative-position bias table in every
// block, and Wan's own checkpoint naming beside transformers'.

namespace ditserve {
namespace {

using ::testing::HasSubstr;

T5Config small_umt5() {
  T5Config c = umt5_tiny();
  c.vocab = 64;
  c.d_model = 32;
  c.d_ff = 48;
  c.d_kv = 8;
  c.layers = 3;
  c.max_tokens = 24;
  return c;
}

// Bias tables large enough to dominate the attention scores.
std::vector<ParamSpec> specs(const T5Config& c, T5Layout layout) {
  std::vector<ParamSpec> out = t5_parameters(c, layout);
  for (ParamSpec& s : out) {
    if (s.name.find("relative_attention_bias") != std::string::npos ||
        s.name.find("pos_embedding") != std::string::npos) {
      s.std = 2.0f;
    }
  }
  return out;
}

std::string bias_name(std::int64_t block) {
  return "encoder.block." + std::to_string(block) +
         ".layer.0.SelfAttention.relative_attention_bias.weight";
}

class Umt5Test : public ::testing::Test {
 protected:
  Umt5Test()
      : config_(small_umt5()),
        cpu_(make_backend(Device::cpu())),
        source_(random_weights(specs(config_, T5Layout::transformers), 5)) {}

  std::vector<float> encode(T5Encoder& encoder) {
    Tensor ids = Tensor::empty_host({2, 20}, DType::i32);
    for (std::int64_t i = 0; i < 40; ++i) ids.data<std::int32_t>()[i] = (i * 37 + 11) % 64;
    Tensor lengths = Tensor::empty_host({2}, DType::i32);
    lengths.data<std::int32_t>()[0] = 20;
    lengths.data<std::int32_t>()[1] = 13;
    return encoder.encode(ids, lengths).to_vector_f32();
  }

  T5Config config_;
  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<WeightSource> source_;
};

TEST_F(Umt5Test, XxlConfigAndEveryBlockHasABiasTable) {
  const T5Config xxl = umt5_xxl();
  EXPECT_EQ(xxl.vocab, 256384);
  EXPECT_EQ(xxl.d_model, 4096);
  EXPECT_EQ(xxl.layers, 24);
  EXPECT_EQ(xxl.heads, 64);
  EXPECT_EQ(xxl.d_kv, 64);
  EXPECT_EQ(xxl.d_ff, 10240);
  EXPECT_EQ(xxl.max_tokens, 512);
  EXPECT_TRUE(xxl.per_layer_bias);
  std::set<std::string> hf, wan;
  for (const ParamSpec& s : t5_parameters(xxl, T5Layout::transformers)) hf.insert(s.name);
  for (const ParamSpec& s : t5_parameters(xxl, T5Layout::wan)) wan.insert(s.name);
  for (std::int64_t i = 0; i < 24; ++i) {
    EXPECT_TRUE(hf.contains(bias_name(i))) << i;
    EXPECT_TRUE(wan.contains("blocks." + std::to_string(i) + ".pos_embedding.embedding.weight"))
        << i;
  }
  for (const char* name :
       {"token_embedding.weight", "blocks.3.attn.q.weight", "blocks.3.attn.o.weight",
        "blocks.3.norm1.weight", "blocks.3.norm2.weight", "blocks.3.ffn.gate.0.weight",
        "blocks.3.ffn.fc1.weight", "blocks.3.ffn.fc2.weight", "norm.weight"}) {
    EXPECT_TRUE(wan.contains(name)) << name;
  }
  EXPECT_TRUE(hf.contains("shared.weight"));
  EXPECT_TRUE(hf.contains("encoder.final_layer_norm.weight"));
  // T5 v1.1 keeps its single table in block 0.
  std::set<std::string> t5;
  for (const ParamSpec& s : t5_parameters(t5_v1_1_xxl())) t5.insert(s.name);
  EXPECT_TRUE(t5.contains(bias_name(0)));
  EXPECT_FALSE(t5.contains(bias_name(1)));
}

// Fails if the encoder used block 0's table everywhere (T5's sharing): replacing block 1
// and 2's tables by block 0's must change the output, and then equal the shared-bias T5
// reading of the same weights.
TEST_F(Umt5Test, EveryBlockUsesItsOwnBias) {
  T5Encoder umt5(config_, WeightLoader(*source_, *cpu_, DType::f32));
  const std::vector<float> own = encode(umt5);

  std::vector<ParamSpec> served = specs(config_, T5Layout::transformers);
  std::vector<ParamSpec> from = served;
  for (ParamSpec& s : from) {
    if (s.name == bias_name(1) || s.name == bias_name(2)) s.name = bias_name(0);
  }
  // RenamedSource maps names to names: serve blocks 1 and 2's tables from block 0's.
  const testing::RenamedSource block0_everywhere(*source_, served, from);
  T5Encoder copied(config_, WeightLoader(block0_everywhere, *cpu_, DType::f32));
  const std::vector<float> shared = encode(copied);
  EXPECT_GT(testing::relative_error(shared, own), 1e-2);

  T5Config t5 = config_;
  t5.per_layer_bias = false;
  T5Encoder shared_reading(t5, WeightLoader(*source_, *cpu_, DType::f32));
  EXPECT_LE(testing::relative_error(encode(shared_reading), shared), 1e-6);
}

TEST_F(Umt5Test, WanNamesLoadToTheSameFunction) {
  const testing::RenamedSource wan(*source_, specs(config_, T5Layout::wan),
                                   specs(config_, T5Layout::transformers));
  T5Encoder hf(config_, WeightLoader(*source_, *cpu_, DType::f32));
  T5Encoder original(config_, WeightLoader(wan, *cpu_, DType::f32));
  EXPECT_EQ(hf.layout(), T5Layout::transformers);
  EXPECT_EQ(original.layout(), T5Layout::wan);
  EXPECT_EQ(encode(original), encode(hf));
}

TEST_F(Umt5Test, MissingPerBlockTableIsNamed) {
  // A T5 v1.1 checkpoint (one table) is not a UMT5 one.
  T5Config t5 = config_;
  t5.per_layer_bias = false;
  const auto one_table = random_weights(t5_parameters(t5), 5);
  try {
    T5Encoder encoder(config_, WeightLoader(*one_table, *cpu_, DType::f32));
    FAIL() << "loaded a shared-bias checkpoint as UMT5";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr(bias_name(1)));
  }
}

}  // namespace
}  // namespace ditserve
