#include "parallel/ulysses.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/copy.h"
#include "models/dit_testing.h"
#include "models/wan_transformer.h"
#include "parallel/group_forward_testing.h"
#include "support/random.h"
#include "tensor/error.h"

// Ulysses (all_to_all over heads) for a tiny Wan DiT on groups of CPU devices against the
// single-device forward: groups of 1-4 members (uneven row and head shards, members
// without heads), a group that changes between forwards, and guidance parallelism.

namespace ditserve {
namespace {

using ::testing::HasSubstr;

constexpr std::uint64_t kSeed = 31;
constexpr double kTolerance = 1e-5;

using testing::first;

class UlyssesTest : public testing::GroupForwardTest<WanTransformer, UlyssesParallel> {
 protected:
  explicit UlyssesTest(WanConfig config = wan_tiny())
      : GroupForwardTest(config,
                         testing::strong_parameters(wan_parameters(config, WanLayout::original)),
                         kSeed) {}

  DenoiseInputs inputs(const Shape& latent_shape, std::uint32_t seed = 1) const {
    const std::int64_t b = latent_shape[0];
    DenoiseInputs in;
    in.latents = testing::random_tensor(latent_shape, seed);
    std::vector<float> ts = {800.0f, 120.0f};
    ts.resize(static_cast<std::size_t>(b), 400.0f);
    in.timesteps = Tensor::from_vector(ts, {b});
    in.captions = testing::random_tensor({b, 6, config_.text_dim}, seed + 1);
    in.caption_lengths =
        b == 1 ? testing::caption_lengths({4}) : testing::caption_lengths({6, 3});
    return in;
  }
};

// 2 x 2 x 5 = 20 tokens and 4 heads: 3 members get uneven rows (7, 7, 6) and heads (2, 1, 1).
TEST_F(UlyssesTest, OneToFourMembersMatchOneDevice) {
  const DenoiseInputs in = inputs({2, 16, 2, 4, 10});
  const Tensor want = reference_->forward(in);
  for (int k = 1; k <= kRanks; ++k) {
    const Tensor got = group_forward_host(first(k), in);
    ASSERT_EQ(got.shape(), want.shape()) << k << " members";
    EXPECT_LE(testing::relative_error(got, want), kTolerance) << k << " members";
  }
}

// Consecutive forwards (denoising steps) on different groups: sizes, members and order
// change, and some rows end up on devices that held none before.
TEST_F(UlyssesTest, GroupChangingBetweenForwards) {
  const DenoiseInputs a = inputs({1, 16, 3, 2, 6}, 3);
  const DenoiseInputs b = inputs({1, 16, 3, 2, 6}, 5);
  const Tensor want_a = reference_->forward(a);
  const Tensor want_b = reference_->forward(b);
  EXPECT_LE(testing::relative_error(group_forward_host(DeviceGroup{{2, 0}}, a), want_a),
            kTolerance);
  EXPECT_LE(testing::relative_error(group_forward_host(DeviceGroup{{1, 3, 0}}, b), want_b),
            kTolerance);
  EXPECT_LE(testing::relative_error(group_forward_host(DeviceGroup{{3, 2, 1, 0}}, a), want_a),
            kTolerance);
  EXPECT_LE(testing::relative_error(group_forward_host(DeviceGroup{{1}}, b), want_b),
            kTolerance);
}

// Fewer tokens than members (a member without rows) still matches.
TEST_F(UlyssesTest, MoreMembersThanTokens) {
  const DenoiseInputs in = inputs({1, 16, 1, 2, 6});  // 3 tokens
  const Tensor want = reference_->forward(in);
  EXPECT_LE(testing::relative_error(group_forward_host(first(4), in), want), kTolerance);
}

// The tolerance would catch a wrong exchange: one token's latents move every other
// token's prediction by far more than it (full attention couples them all).
TEST_F(UlyssesTest, CouplingIsVisible) {
  const DenoiseInputs in = inputs({1, 16, 2, 4, 10});
  const Tensor base = reference_->forward(in);
  DenoiseInputs other = in;
  other.latents = testing::random_tensor(in.latents.shape(), 1);
  copy_into(*host_, other.latents.narrow(2, 1, 1).narrow(3, 2, 2).narrow(4, 8, 2),
            testing::random_tensor({1, 16, 1, 2, 2}, 7, 2.0f, 3.0f));
  const Tensor moved = reference_->forward(other);
  // Frame 0, rows 0-1, columns 0-1: far from the changed patch.
  const auto corner = [&](const Tensor& t) {
    return contiguous(*host_, t.narrow(2, 0, 1).narrow(3, 0, 2).narrow(4, 0, 2));
  };
  EXPECT_GT(testing::relative_error(corner(moved), corner(base)), 100 * kTolerance);
}

TEST_F(UlyssesTest, GuidanceHalvesMatchTwoForwards) {
  DenoiseInputs prompt = inputs({1, 16, 2, 2, 4});
  DenoiseInputs null = prompt;
  null.captions = testing::random_tensor({1, 6, config_.text_dim}, 17);
  null.caption_lengths = testing::caption_lengths({2});
  const DeviceGroup group = first(4);
  const auto [prompt_group, null_group] = guidance_halves(group);
  const Prepared p = prepare_host(prompt_group, prompt);
  const Prepared n = prepare_host(null_group, null);
  const GuidedPrediction out = ulysses_guidance_forward(devices_.fabric(), group, p.members, n.members);
  ASSERT_EQ(out.cond.device(), devices_[0].device());
  ASSERT_EQ(out.uncond.device(), devices_[0].device());
  EXPECT_LE(testing::relative_error(transfer(devices_[0], out.cond, *host_),
                                    reference_->forward(prompt)),
            kTolerance);
  EXPECT_LE(testing::relative_error(transfer(devices_[0], out.uncond, *host_),
                                    reference_->forward(null)),
            kTolerance);
}

TEST_F(UlyssesTest, MismatchedMembersAreRefused) {
  const DenoiseInputs in = inputs({1, 16, 1, 2, 2});
  const Prepared p = prepare_host(first(2), in);
  UlyssesParallel ulysses;
  try {
    ulysses.forward(devices_.fabric(), first(3), p.members);
    FAIL() << "two members' stages accepted for a group of three";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("2 members' stages for a group of 3"));
  }
  try {
    ulysses.forward(devices_.fabric(), DeviceGroup{{1, 0}}, p.members);
    FAIL() << "stages accepted on the wrong devices";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("member 0's stages run on"));
  }
}

// 2 heads on 3 and 4 members: members without heads only relay.
class UlyssesFewHeadsTest : public UlyssesTest {
 protected:
  static WanConfig two_heads() {
    WanConfig c = wan_tiny();
    c.num_heads = 2;
    return c;
  }
  UlyssesFewHeadsTest() : UlyssesTest(two_heads()) {}
};

TEST_F(UlyssesFewHeadsTest, MembersWithoutHeadsMatchOneDevice) {
  const DenoiseInputs in = inputs({2, 16, 2, 2, 6});
  const Tensor want = reference_->forward(in);
  for (int k = 2; k <= kRanks; ++k) {
    EXPECT_LE(testing::relative_error(group_forward_host(first(k), in), want), kTolerance)
        << k << " members";
  }
}

}  // namespace
}  // namespace ditserve
