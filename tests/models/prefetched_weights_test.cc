#include "models/prefetched_weights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

namespace ditserve {
namespace {

// 2.1M values: 32 chunks and more than one work item, so threads share the tensor.
const Shape kEmbedShape = {64, 32769};

std::vector<ParamSpec> specs() {
  return {
      {"blocks.0.attn.weight", {3, 5}, ParamInit::normal, 0.5f},
      {"blocks.0.attn.bias", {5}, ParamInit::zeros},
      {"embed.weight", kEmbedShape, ParamInit::normal, 0.02f},
      {"rope.freqs", {70000}, ParamInit::rope_frequencies, 0.0f},
      {"norm.weight", {70000}, ParamInit::ones},
  };
}

TEST(PrefetchedRandomWeightsTest, ThreadCountDoesNotChangeTheValues) {
  const auto reference = random_weights(specs(), 23);
  const PrefetchedRandomWeights one(specs(), 23, 1);
  const PrefetchedRandomWeights three(specs(), 23, 3);
  for (const ParamSpec& spec : specs()) {
    const std::vector<float> expected = reference->get(spec.name, spec.shape).to_vector_f32();
    EXPECT_EQ(one.get(spec.name, spec.shape).to_vector_f32(), expected) << spec.name;
    EXPECT_EQ(three.get(spec.name, spec.shape).to_vector_f32(), expected) << spec.name;
    // Handed out once; a later call generates the same values again.
    EXPECT_EQ(three.get(spec.name, spec.shape).to_vector_f32(), expected) << spec.name;
  }
}

TEST(PrefetchedRandomWeightsTest, LargeTensorIsNormalAcrossChunks) {
  const PrefetchedRandomWeights source(specs(), 5, 3);
  const std::vector<float> v = source.get("embed.weight", kEmbedShape).to_vector_f32();
  // Each chunk has its own stream: chunk 1 does not repeat chunk 0, nor the last chunk.
  const auto chunk = [&](std::int64_t c) {
    return std::vector<float>(v.begin() + c * kRandomChunkValues,
                              v.begin() + c * kRandomChunkValues + 16);
  };
  EXPECT_NE(chunk(0), chunk(1));
  EXPECT_NE(chunk(0), chunk(31));
  EXPECT_NE(chunk(1), chunk(31));
  const double n = static_cast<double>(v.size());
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / n;
  double var = 0.0;
  for (float x : v) var += (x - mean) * (x - mean);
  EXPECT_NEAR(mean, 0.0, 1e-4);  // 7 standard errors of 0.02 / sqrt(2.1M)
  EXPECT_NEAR(std::sqrt(var / n), 0.02, 2e-4);
}

}  // namespace
}  // namespace ditserve
