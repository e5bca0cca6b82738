#include "models/weights.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "io/checkpoint.h"
#include "io/io_test_util.h"
#include "io/safetensors.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::vector<ParamSpec> sample_specs() {
  return {
      {"blocks.0.attn.weight", {3, 5}, ParamInit::normal, 0.5f},
      {"blocks.0.attn.bias", {5}, ParamInit::zeros},
      {"blocks.0.norm.weight", {4}, ParamInit::ones},
      // Longer than one generator stream (65536 values), so the stream split is covered.
      {"embed.weight", {3, 50000}, ParamInit::normal, 2.0f},
      {"conv.weight", {2, 3, 2, 2}, ParamInit::normal, 1.0f},
  };
}

std::vector<float> values(const WeightSource& source, const std::string& name, const Shape& shape) {
  return source.get(name, shape).to_vector_f32();
}

// The message of the InvalidArgument that `f` throws; fails the test when none is thrown.
template <typename F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InvalidArgument thrown";
  return {};
}

TEST(RandomWeightsTest, ValuesDependOnlyOnSeedAndName) {
  std::vector<ParamSpec> specs = sample_specs();
  const auto forward = random_weights(specs, 7);
  std::reverse(specs.begin(), specs.end());
  specs.push_back({"extra.weight", {9}, ParamInit::normal, 1.0f});
  const auto reversed = random_weights(specs, 7);
  // Loading in another order, from a source with other specs, gives the same values.
  const std::vector<float> embed_first = values(*reversed, "embed.weight", {3, 50000});
  const std::vector<float> attn_later = values(*reversed, "blocks.0.attn.weight", {3, 5});
  EXPECT_EQ(values(*forward, "blocks.0.attn.weight", {3, 5}), attn_later);
  EXPECT_EQ(values(*forward, "embed.weight", {3, 50000}), embed_first);
  EXPECT_EQ(values(*forward, "conv.weight", {2, 3, 2, 2}),
            values(*reversed, "conv.weight", {2, 3, 2, 2}));
  // Repeated loads agree.
  EXPECT_EQ(values(*forward, "blocks.0.attn.weight", {3, 5}), attn_later);
}

TEST(RandomWeightsTest, SeedAndNameChangeTheValues) {
  const auto a = random_weights(sample_specs(), 7);
  const auto b = random_weights(sample_specs(), 8);
  const std::vector<float> va = values(*a, "blocks.0.attn.weight", {3, 5});
  const std::vector<float> vb = values(*b, "blocks.0.attn.weight", {3, 5});
  ASSERT_EQ(va.size(), vb.size());
  for (std::size_t i = 0; i < va.size(); ++i) EXPECT_NE(va[i], vb[i]) << i;

  const auto renamed = random_weights({{"other.weight", {3, 5}, ParamInit::normal, 0.5f}}, 7);
  EXPECT_NE(values(*renamed, "other.weight", {3, 5}), va);
}

TEST(RandomWeightsTest, RopeFrequenciesAreTheRealTable) {
  const auto source = random_weights({{"rope.freqs", {36}, ParamInit::rope_frequencies, 0.0f}}, 3);
  const std::vector<float> v = values(*source, "rope.freqs", {36});
  // rotary-embedding-torch: 1 / 10000^(arange(0, 72, 2) / 72).
  for (int i = 0; i < 36; ++i) {
    EXPECT_NEAR(v[i], 1.0 / std::pow(10000.0, 2.0 * i / 72.0), 1e-7) << i;
  }
}

TEST(RandomWeightsTest, InitKinds) {
  const auto source = random_weights(sample_specs(), 3);
  for (float v : values(*source, "blocks.0.attn.bias", {5})) EXPECT_EQ(v, 0.0f);
  for (float v : values(*source, "blocks.0.norm.weight", {4})) EXPECT_EQ(v, 1.0f);

  const std::vector<float> v = values(*source, "embed.weight", {3, 50000});
  const double n = static_cast<double>(v.size());
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / n;
  double var = 0.0;
  for (float x : v) var += (x - mean) * (x - mean);
  const double std = std::sqrt(var / n);
  EXPECT_NEAR(mean, 0.0, 0.03);  // 5 standard errors of 2/sqrt(150000)
  EXPECT_NEAR(std, 2.0, 0.03);
  // Streams are independent: the second one does not repeat the first.
  EXPECT_NE(std::vector<float>(v.begin(), v.begin() + 8),
            std::vector<float>(v.begin() + 65536, v.begin() + 65536 + 8));
  const auto big = std::max_element(v.begin(), v.end(),
                                    [](float a, float b) { return std::abs(a) < std::abs(b); });
  EXPECT_GT(std::abs(*big), 2.0f * 3.5f);  // tails exist: 150000 draws reach 4 sigma
}

// Values the generator gave before it was cut into chunks of kRandomChunkValues for
// parallel generation (computed with that code): the chunking changed no tensor's values,
// so existing checkpoints and golden outputs stay valid.
TEST(RandomWeightsTest, ValuesArePinned) {
  ASSERT_EQ(kRandomChunkValues, 65536);
  const auto source = random_weights({{"pin.small.weight", {1000, 65}, ParamInit::normal, 0.02f},
                                      {"pin.exact.weight", {256, 256}, ParamInit::normal, 0.02f},
                                      {"pin.multi.weight", {3, 50001}, ParamInit::normal, 1.0f}},
                                     42);
  const std::vector<float> small = values(*source, "pin.small.weight", {1000, 65});  // < a chunk
  EXPECT_EQ(small[0], 0x1.88be76p-6f);
  EXPECT_EQ(small[1], 0x1.7f587ep-11f);
  EXPECT_EQ(small[2], 0x1.59a272p-6f);
  EXPECT_EQ(small[3], 0x1.9244fp-8f);
  EXPECT_EQ(small[1000], -0x1.5d91eep-7f);
  EXPECT_EQ(small[64999], 0x1.facce8p-6f);
  const std::vector<float> exact = values(*source, "pin.exact.weight", {256, 256});  // one chunk
  EXPECT_EQ(exact[0], -0x1.e1fe5ap-6f);
  EXPECT_EQ(exact[1], 0x1.66faa2p-6f);
  EXPECT_EQ(exact[2], 0x1.401d1cp-5f);
  EXPECT_EQ(exact[3], 0x1.c51d86p-6f);
  EXPECT_EQ(exact[1000], -0x1.cb1d3cp-6f);
  EXPECT_EQ(exact[65535], 0x1.09ad52p-8f);
  // Three chunks, the last of odd length (its final Box-Muller pair loses its sine).
  const std::vector<float> multi = values(*source, "pin.multi.weight", {3, 50001});
  EXPECT_EQ(multi[0], -0x1.26b45cp-1f);
  EXPECT_EQ(multi[1], 0x1.dc9144p+0f);
  EXPECT_EQ(multi[2], 0x1.ef2bd8p-1f);
  EXPECT_EQ(multi[3], -0x1.185d96p-1f);
  EXPECT_EQ(multi[1000], 0x1.12e0d4p+0f);
  EXPECT_EQ(multi[65535], -0x1.5673ap-2f);
  EXPECT_EQ(multi[65536], 0x1.df5064p-1f);
  EXPECT_EQ(multi[65537], -0x1.a4cfcp-2f);
  EXPECT_EQ(multi[131072], -0x1.032e4ep+0f);
  EXPECT_EQ(multi[150002], -0x1.f083b4p-2f);
}

TEST(RandomWeightsTest, ChunksFilledInAnyOrderGiveTheTensor) {
  const std::vector<ParamSpec> specs = {
      {"embed.weight", {5, 40000}, ParamInit::normal, 0.5f},  // 4 chunks, the last partial
      {"rope.freqs", {70000}, ParamInit::rope_frequencies, 0.0f},
      {"norm.weight", {70000}, ParamInit::ones},
      {"proj.bias", {70000}, ParamInit::zeros},
  };
  const auto source = random_weights(specs, 17);
  for (const ParamSpec& spec : specs) {
    const std::int64_t n = shape_numel(spec.shape);
    const std::int64_t chunks = (n + kRandomChunkValues - 1) / kRandomChunkValues;
    std::vector<float> filled(static_cast<std::size_t>(n), -7.0f);
    for (std::int64_t c = chunks - 1; c >= 0; --c) {
      fill_random_chunks(spec, 17, c, c + 1, filled.data());
    }
    EXPECT_EQ(filled, values(*source, spec.name, spec.shape)) << spec.name;
    // A range fills exactly its chunks.
    std::vector<float> ranged(static_cast<std::size_t>(n), -7.0f);
    fill_random_chunks(spec, 17, 1, 2, ranged.data());
    EXPECT_EQ(ranged[kRandomChunkValues - 1], -7.0f) << spec.name;
    EXPECT_EQ(ranged[kRandomChunkValues], filled[kRandomChunkValues]) << spec.name;
    if (chunks > 2) {
      EXPECT_EQ(ranged[2 * kRandomChunkValues], -7.0f) << spec.name;
    }
    if (spec.init == ParamInit::rope_frequencies) {  // past chunk 0, still the table's value
      EXPECT_EQ(ranged[kRandomChunkValues],
                static_cast<float>(std::pow(10000.0, -65536.0 / 70000.0)));
    }
  }
}

TEST(RandomWeightsTest, ErrorsNameTheTensorAndTheSource) {
  const auto source = random_weights(sample_specs(), 11);
  EXPECT_TRUE(source->contains("conv.weight"));
  EXPECT_FALSE(source->contains("conv.bias"));
  EXPECT_THAT(invalid_argument_message([&] { source->get("conv.bias", {2}); }),
              AllOf(HasSubstr("conv.bias"), HasSubstr("seed 11")));
  EXPECT_THAT(invalid_argument_message([&] {
                source->get("conv.weight", {2, 3, 3, 3});
              }),
              AllOf(HasSubstr("conv.weight"), HasSubstr("seed 11"), HasSubstr("[2, 3, 3, 3]"),
                    HasSubstr("[2, 3, 2, 2]")));
  std::vector<ParamSpec> duplicated = sample_specs();
  duplicated.push_back(duplicated.front());
  EXPECT_THAT(invalid_argument_message([&] { random_weights(duplicated, 1); }),
              HasSubstr("blocks.0.attn.weight"));
}

class WeightFileTest : public testing::TempDirTest {};

TEST_F(WeightFileTest, RandomCheckpointRoundTripsInF32) {
  const std::vector<ParamSpec> specs = sample_specs();
  write_random_checkpoint(dir_ / "ckpt", specs, 5, DType::f32);
  const auto random = random_weights(specs, 5);
  // By directory, by index file and by the one shard.
  const auto by_dir = open_weight_file(dir_ / "ckpt");
  const auto by_index = open_weight_file(dir_ / "ckpt" / "model.safetensors.index.json");
  const auto by_shard = open_weight_file(dir_ / "ckpt" / "model-00001-of-00001.safetensors");
  for (const ParamSpec& spec : specs) {
    const Tensor stored = by_dir->get(spec.name, spec.shape);
    EXPECT_EQ(stored.dtype(), DType::f32) << spec.name;
    const std::vector<float> expected = values(*random, spec.name, spec.shape);
    EXPECT_EQ(stored.to_vector_f32(), expected) << spec.name;
    EXPECT_EQ(values(*by_index, spec.name, spec.shape), expected) << spec.name;
    EXPECT_EQ(values(*by_shard, spec.name, spec.shape), expected) << spec.name;
  }
  EXPECT_THAT(by_dir->describe(), HasSubstr("model.safetensors.index.json"));
}

TEST_F(WeightFileTest, RandomCheckpointInBf16IsTheRoundedValues) {
  const std::vector<ParamSpec> specs = sample_specs();
  write_random_checkpoint(dir_, specs, 9, DType::bf16);
  const auto random = random_weights(specs, 9);
  const auto file = open_weight_file(dir_);
  for (const ParamSpec& spec : specs) {
    const Tensor stored = file->get(spec.name, spec.shape);
    ASSERT_EQ(stored.dtype(), DType::bf16) << spec.name;
    const std::vector<float> exact = values(*random, spec.name, spec.shape);
    const std::vector<float> got = stored.to_vector_f32();
    for (std::size_t i = 0; i < exact.size(); ++i) {
      ASSERT_EQ(got[i], bf16_to_f32(f32_to_bf16(exact[i]))) << spec.name << " " << i;
    }
  }
  EXPECT_THROW(write_random_checkpoint(dir_ / "f16", specs, 9, DType::f16), InvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "f16" / "model.safetensors.index.json"));
}

TEST_F(WeightFileTest, ShardedDirectoryRoundTrip) {
  const std::vector<ParamSpec> specs = sample_specs();
  const auto random = random_weights(specs, 21);
  NamedTensors tensors;
  for (const ParamSpec& spec : specs)
    tensors.emplace_back(spec.name, random->get(spec.name, spec.shape));
  write_sharded_checkpoint(dir_, tensors, 4096);  // several shards
  const Checkpoint checkpoint(dir_);
  ASSERT_GE(checkpoint.num_files(), 3u);
  const auto file = open_weight_file(dir_);
  for (const ParamSpec& spec : specs) {
    EXPECT_TRUE(file->contains(spec.name));
    EXPECT_EQ(values(*file, spec.name, spec.shape), values(*random, spec.name, spec.shape));
  }
}

TEST_F(WeightFileTest, MissingAndMisshapedTensorsNameTensorAndFile) {
  const std::vector<ParamSpec> specs = sample_specs();
  write_safetensors(
      dir_ / "weights.safetensors",
      {{"blocks.0.attn.weight", random_weights(specs, 1)->get("blocks.0.attn.weight", {3, 5})},
       {"ids", Tensor::empty_host({2}, DType::i32)}});
  const auto file = open_weight_file(dir_ / "weights.safetensors");
  const std::unique_ptr<Backend> cpu = make_backend(Device::cpu());
  const WeightLoader loader(*file, *cpu, DType::f32, "blocks.0.");
  EXPECT_TRUE(loader.contains("attn.weight"));
  EXPECT_FALSE(loader.contains("attn.bias"));
  EXPECT_THAT(invalid_argument_message([&] { loader.load("attn.bias", {5}); }),
              AllOf(HasSubstr("blocks.0.attn.bias"), HasSubstr("weights.safetensors")));
  EXPECT_THAT(invalid_argument_message([&] {
                loader.load("attn.weight", {5, 3});
              }),
              AllOf(HasSubstr("blocks.0.attn.weight"), HasSubstr("weights.safetensors"),
                    HasSubstr("[5, 3]")));
  EXPECT_THAT(invalid_argument_message([&] { file->get("ids", {2}); }),
              AllOf(HasSubstr("ids"), HasSubstr("weights.safetensors"), HasSubstr("i32")));
  EXPECT_THROW(open_weight_file(dir_ / "absent.safetensors"), Error);
}

TEST_F(WeightFileTest, LoaderCastsAndPlacesOnTheBackend) {
  const std::vector<ParamSpec> specs = sample_specs();
  const auto random = random_weights(specs, 4);
  const std::unique_ptr<Backend> cpu1 = make_backend(Device::cpu(1));
  const WeightLoader f32(*random, *cpu1, DType::f32);
  const Tensor w = f32.load("blocks.0.attn.weight", {3, 5});
  EXPECT_EQ(w.device(), Device::cpu(1));
  EXPECT_EQ(w.to_vector_f32(), values(*random, "blocks.0.attn.weight", {3, 5}));

  const WeightLoader bf16(*random, *cpu1, DType::bf16);
  const Tensor wb = bf16.sub("blocks.0.").load("attn.weight", {3, 5});
  ASSERT_EQ(wb.dtype(), DType::bf16);
  const std::vector<float> exact = values(*random, "blocks.0.attn.weight", {3, 5});
  const std::vector<float> rounded = wb.to_vector_f32();
  for (std::size_t i = 0; i < exact.size(); ++i) {
    EXPECT_EQ(rounded[i], bf16_to_f32(f32_to_bf16(exact[i])));
  }
  const Tensor kept = bf16.load_f32("blocks.0.attn.weight", {3, 5});
  EXPECT_EQ(kept.dtype(), DType::f32);
  EXPECT_EQ(kept.to_vector_f32(), exact);
}

TEST_F(WeightFileTest, LoadConvIsChannelsLast) {
  // 2-D kernel [O=2, C=3, 2, 2] and 3-D kernel [O=2, C=3, 2, 1, 2] with distinct values.
  Tensor w2 = Tensor::empty_host({2, 3, 2, 2}, DType::f32);
  Tensor w3 = Tensor::empty_host({2, 3, 2, 1, 2}, DType::f32);
  for (std::int64_t i = 0; i < w2.numel(); ++i) w2.data<float>()[i] = static_cast<float>(i);
  for (std::int64_t i = 0; i < w3.numel(); ++i) w3.data<float>()[i] = 100.0f + i;
  write_safetensors(dir_ / "conv.safetensors", {{"conv2d.weight", w2}, {"conv3d.weight", w3}});
  const auto file = open_weight_file(dir_ / "conv.safetensors");
  const std::unique_ptr<Backend> cpu = make_backend(Device::cpu());
  const WeightLoader loader(*file, *cpu, DType::f32);

  const Tensor c2 = loader.load_conv("conv2d.weight", {2, 3, 2, 2});
  ASSERT_EQ(c2.shape(), (Shape{2, 2, 2, 3}));
  ASSERT_TRUE(c2.is_contiguous());
  for (std::int64_t o = 0; o < 2; ++o)
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t y = 0; y < 2; ++y)
        for (std::int64_t x = 0; x < 2; ++x)
          EXPECT_EQ(c2.item_f32({o, y, x, c}), w2.item_f32({o, c, y, x}));

  const Tensor c3 = loader.load_conv("conv3d.weight", {2, 3, 2, 1, 2});
  ASSERT_EQ(c3.shape(), (Shape{2, 2, 1, 2, 3}));
  ASSERT_TRUE(c3.is_contiguous());
  for (std::int64_t o = 0; o < 2; ++o)
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t t = 0; t < 2; ++t)
        for (std::int64_t x = 0; x < 2; ++x)
          EXPECT_EQ(c3.item_f32({o, t, 0, x, c}), w3.item_f32({o, c, t, 0, x}));
  EXPECT_THAT(invalid_argument_message([&] {
                loader.load_conv("conv2d.weight", {2, 3, 3, 3});
              }),
              AllOf(HasSubstr("conv2d.weight"), HasSubstr("conv.safetensors")));
}

}  // namespace
}  // namespace ditserve
