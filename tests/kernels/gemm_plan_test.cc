#include "kernels/gemm_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// A batched, biased, residual GEMM key with every field distinct from its default.
GemmPlanKey sample_key() {
  GemmPlanKey key;
  key.device = 1;
  key.dtype = DType::bf16;
  key.transa = true;
  key.m = 1152;
  key.n = 4320;
  key.k = 4608;
  key.lda = 4608;
  key.ldb = 4608;
  key.ldc = 1152;
  key.ldd = 1152;
  key.batch = 2;
  key.stride_a = 1152 * 4608;
  key.stride_b = 4320 * 4608;
  key.stride_c = 4320 * 1152;
  key.stride_d = 4320 * 1152;
  key.stride_bias = 1152;
  key.epilogue = 4;
  key.has_c = true;
  key.has_bias = true;
  key.align_a = key.align_b = key.align_c = key.align_d = key.align_bias = 256;
  return key;
}

TEST(GemmPlanKeyTest, EveryFieldSeparatesPlans) {
  const GemmPlanKey base = sample_key();
  const GemmPlanKeyHash hash;
  EXPECT_EQ(base, sample_key());
  EXPECT_EQ(hash(base), hash(sample_key()));
  // One mutation per field: each must give a key unequal to the base (a different plan),
  // and all of them distinct hashes here (a weak hash would collide on some).
  const std::vector<std::function<void(GemmPlanKey&)>> mutations = {
      [](GemmPlanKey& k) { k.device = 0; },
      [](GemmPlanKey& k) { k.dtype = DType::f16; },
      [](GemmPlanKey& k) { k.transa = false; },
      [](GemmPlanKey& k) { k.transb = true; },
      [](GemmPlanKey& k) { k.m += 1; },
      [](GemmPlanKey& k) { k.n += 1; },
      [](GemmPlanKey& k) { k.k += 1; },
      [](GemmPlanKey& k) { k.lda += 8; },
      [](GemmPlanKey& k) { k.ldb += 8; },
      [](GemmPlanKey& k) { k.ldc += 8; },
      [](GemmPlanKey& k) { k.ldd += 8; },
      [](GemmPlanKey& k) { k.batch = 3; },
      [](GemmPlanKey& k) { k.stride_a = 0; },
      [](GemmPlanKey& k) { k.stride_b = 0; },
      [](GemmPlanKey& k) { k.stride_c += 1; },
      [](GemmPlanKey& k) { k.stride_d += 1; },
      [](GemmPlanKey& k) { k.stride_bias = 0; },
      [](GemmPlanKey& k) { k.epilogue = 1; },
      [](GemmPlanKey& k) { k.has_c = false; },
      [](GemmPlanKey& k) { k.has_bias = false; },
      [](GemmPlanKey& k) { k.align_a = 16; },
      [](GemmPlanKey& k) { k.align_b = 16; },
      [](GemmPlanKey& k) { k.align_c = 16; },
      [](GemmPlanKey& k) { k.align_d = 16; },
      [](GemmPlanKey& k) { k.align_bias = 16; },
  };
  std::unordered_set<std::size_t> hashes{hash(base)};
  for (std::size_t i = 0; i < mutations.size(); ++i) {
    GemmPlanKey changed = base;
    mutations[i](changed);
    EXPECT_FALSE(changed == base) << "mutation " << i;
    hashes.insert(hash(changed));
  }
  EXPECT_EQ(hashes.size(), mutations.size() + 1);
}

TEST(GemmPlanKeyTest, DescribeNamesTheProblem) {
  const std::string text = sample_key().describe();
  EXPECT_THAT(text, HasSubstr("bf16 m=1152 n=4320 k=4608 TN"));
  EXPECT_THAT(text, HasSubstr("batch 2"));
  EXPECT_THAT(text, HasSubstr("bias"));
  EXPECT_THAT(text, HasSubstr("cuda:1"));
}

TEST(GemmPlanTest, PointerAlignmentIsTheLargestPowerOfTwoUpTo256) {
  EXPECT_EQ(pointer_alignment(0), 256u);
  EXPECT_EQ(pointer_alignment(0x10000), 256u);
  EXPECT_EQ(pointer_alignment(0x10080), 128u);
  EXPECT_EQ(pointer_alignment(0x10002), 2u);
  EXPECT_EQ(pointer_alignment(0x10001), 1u);
  EXPECT_EQ(pointer_alignment(0x10000 + 3 * 16), 16u);
}

TEST(GemmPlanTest, StridedExtentCoversTheLastElementOfTheLastMatrix) {
  // One 1152 x 4320 column-major matrix, ld 1152: exactly its elements.
  EXPECT_EQ(strided_extent(1152, 4320, 1152, 1, 0), 1152 * 4320);
  // Padded ld: the last column ends at its row count, not at ld.
  EXPECT_EQ(strided_extent(100, 3, 128, 1, 0), 2 * 128 + 100);
  // Batched: the last matrix starts at (batch - 1) * stride.
  EXPECT_EQ(strided_extent(100, 3, 128, 4, 1000), 3 * 1000 + 2 * 128 + 100);
  // Matrices interleaved in one larger one (stride smaller than a matrix).
  EXPECT_EQ(strided_extent(64, 10, 256, 4, 64), 3 * 64 + 9 * 256 + 64);
  EXPECT_EQ(strided_extent(0, 3, 128, 4, 1000), 0);
  EXPECT_EQ(strided_extent(100, 3, 128, 0, 1000), 0);
}

TEST(GemmPlanTest, MedianOfOddAndEvenCounts) {
  EXPECT_EQ(median_ms({}), std::nullopt);
  EXPECT_DOUBLE_EQ(*median_ms({3.0}), 3.0);
  EXPECT_DOUBLE_EQ(*median_ms({5.0, 1.0, 9.0, 2.0, 100.0}), 5.0);
  EXPECT_DOUBLE_EQ(*median_ms({4.0, 1.0, 3.0, 2.0}), 2.5);
}

TEST(GemmPlanTest, PickFastestKeepsTheHeuristicsFirstUnlessClearlyBeaten) {
  using T = std::vector<std::optional<double>>;
  // Clearly faster (20%): taken.
  EXPECT_EQ(pick_fastest(T{1.0, 0.8, 0.9}, 0.03), std::size_t{1});
  // Faster by only 2% < 3%: the first (heuristic's pick) stays.
  EXPECT_EQ(pick_fastest(T{1.0, 0.98, 1.2}, 0.03), std::size_t{0});
  // With no margin any gain wins; ties go to the lower index.
  EXPECT_EQ(pick_fastest(T{1.0, 0.98, 1.2}, 0.0), std::size_t{1});
  EXPECT_EQ(pick_fastest(T{1.0, 0.5, 0.5}, 0.0), std::size_t{1});
  EXPECT_EQ(pick_fastest(T{1.0, 1.0}, 0.0), std::size_t{0});
  // Candidates that failed are skipped, also as the reference for the margin.
  EXPECT_EQ(pick_fastest(T{std::nullopt, 1.0, 0.99}, 0.03), std::size_t{1});
  EXPECT_EQ(pick_fastest(T{std::nullopt, 1.0, 0.5}, 0.03), std::size_t{2});
  EXPECT_EQ(pick_fastest(T{std::nullopt, std::nullopt}, 0.03), std::nullopt);
  EXPECT_EQ(pick_fastest(T{}, 0.03), std::nullopt);
}

TEST(GemmTuningOptionsTest, FlagsParseStrictly) {
  EXPECT_TRUE(parse_env_flag("X", nullptr, true));
  EXPECT_FALSE(parse_env_flag("X", "", false));
  EXPECT_FALSE(parse_env_flag("X", "0", true));
  EXPECT_TRUE(parse_env_flag("X", "1", false));
  EXPECT_THAT([] { parse_env_flag("DITSERVE_GEMM_AUTOTUNE", "yes", true); },
              ThrowsMessage<InvalidArgument>(HasSubstr("DITSERVE_GEMM_AUTOTUNE is 'yes'")));
}

TEST(GemmTuningOptionsTest, FromEnvReadsBothVariables) {
  // Each test runs in its own process under ctest; restore anyway for --gtest_filter runs.
  const auto saved = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  const auto restore = [](const char* name, const std::optional<std::string>& v) {
    if (v) {
      setenv(name, v->c_str(), 1);
    } else {
      unsetenv(name);
    }
  };
  const auto autotune = saved("DITSERVE_GEMM_AUTOTUNE"), debug = saved("DITSERVE_GEMM_DEBUG");
  unsetenv("DITSERVE_GEMM_AUTOTUNE");
  unsetenv("DITSERVE_GEMM_DEBUG");
  GemmTuningOptions defaults = GemmTuningOptions::from_env();
  EXPECT_TRUE(defaults.autotune);
  EXPECT_FALSE(defaults.debug);
  setenv("DITSERVE_GEMM_AUTOTUNE", "0", 1);
  setenv("DITSERVE_GEMM_DEBUG", "1", 1);
  GemmTuningOptions set = GemmTuningOptions::from_env();
  EXPECT_FALSE(set.autotune);
  EXPECT_TRUE(set.debug);
  setenv("DITSERVE_GEMM_DEBUG", "2", 1);
  EXPECT_THROW(GemmTuningOptions::from_env(), InvalidArgument);
  restore("DITSERVE_GEMM_AUTOTUNE", autotune);
  restore("DITSERVE_GEMM_DEBUG", debug);
}

}  // namespace
}  // namespace ditserve
