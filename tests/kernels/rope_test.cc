#include "kernels/rope.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// Reference interleaved-pair rotation of x [B, S, H, D] by angles [S, D/2], in double.
std::vector<float> rope_ref(const Tensor& x, const Tensor& angles) {
  const std::int64_t b = x.size(0), s = x.size(1), h = x.size(2), d = x.size(3);
  std::vector<float> out(static_cast<std::size_t>(x.numel()));
  for (std::int64_t i = 0; i < b; ++i)
    for (std::int64_t p = 0; p < s; ++p)
      for (std::int64_t k = 0; k < h; ++k)
        for (std::int64_t j = 0; j < d / 2; ++j) {
          const double a = angles.item_f32({p, j});
          const double x0 = x.item_f32({i, p, k, 2 * j}), x1 = x.item_f32({i, p, k, 2 * j + 1});
          const std::size_t at = static_cast<std::size_t>(((i * s + p) * h + k) * d + 2 * j);
          out[at] = static_cast<float>(x0 * std::cos(a) - x1 * std::sin(a));
          out[at + 1] = static_cast<float>(x1 * std::cos(a) + x0 * std::sin(a));
        }
  return out;
}

class RopeTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu(0));
};

TEST_F(RopeTest, Angles1dFollowTheFormula) {
  const Tensor a = rope_angles_1d(7, 10, 10000.0);
  ASSERT_THAT(a.shape(), ElementsAre(7, 5));
  EXPECT_EQ(a.device(), Device::cpu(0));
  for (std::int64_t s = 0; s < 7; ++s) {
    for (std::int64_t i = 0; i < 5; ++i) {
      EXPECT_NEAR(a.item_f32({s, i}), s * std::pow(10000.0, -2.0 * i / 10.0), 1e-6) << s << i;
    }
  }
  EXPECT_EQ(rope_angles_1d(0, 4, 10000.0).numel(), 0);
}

TEST_F(RopeTest, Angles3dSplitPairsBetweenTimeHeightAndWidth) {
  const std::array<std::int64_t, 3> grid = {3, 4, 5};
  const std::array<std::int64_t, 3> dims = {6, 4, 4};
  const double theta = 100.0;
  const Tensor a = rope_angles_3d(grid, dims, theta);
  ASSERT_THAT(a.shape(), ElementsAre(60, 7));
  for (std::int64_t t = 0; t < 3; ++t)
    for (std::int64_t h = 0; h < 4; ++h)
      for (std::int64_t w = 0; w < 5; ++w) {
        const std::int64_t token = (t * 4 + h) * 5 + w;
        for (std::int64_t i = 0; i < 3; ++i)
          EXPECT_NEAR(a.item_f32({token, i}), t * std::pow(theta, -2.0 * i / 6), 1e-6);
        for (std::int64_t i = 0; i < 2; ++i)
          EXPECT_NEAR(a.item_f32({token, 3 + i}), h * std::pow(theta, -2.0 * i / 4), 1e-6);
        for (std::int64_t i = 0; i < 2; ++i)
          EXPECT_NEAR(a.item_f32({token, 5 + i}), w * std::pow(theta, -2.0 * i / 4), 1e-6);
      }
}

TEST_F(RopeTest, ApplyRopeMatchesReference) {
  const std::int64_t b = 2, s = 7, h = 3, d = 10;
  const Tensor x = testing::random_tensor({b, s, h, d}, 1);
  const Tensor angles = rope_angles_1d(s, d, 10000.0);
  const Tensor out = apply_rope(*be, x, angles);
  EXPECT_EQ(out.shape(), x.shape());
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), rope_ref(x, angles)), 1e-6);
  // Position 0 does not rotate; rotations keep each pair's length.
  for (std::int64_t j = 0; j < d; ++j) EXPECT_EQ(out.item_f32({1, 0, 2, j}), x.item_f32({1, 0, 2, j}));
  const double before = std::hypot(x.item_f32({0, 5, 1, 4}), x.item_f32({0, 5, 1, 5}));
  const double after = std::hypot(out.item_f32({0, 5, 1, 4}), out.item_f32({0, 5, 1, 5}));
  EXPECT_NEAR(after, before, 1e-6);
}

TEST_F(RopeTest, ApplyRopeOnPermutedHeadsAndRandomAngles) {
  // q laid out [B, H, S, D] and viewed as [B, S, H, D]: unit stride on D only.
  const Tensor q = testing::random_tensor({2, 5, 9, 8}, 2).permute({0, 2, 1, 3});
  const Tensor angles = testing::random_tensor({9, 4}, 3, -7.0f, 7.0f);
  const Tensor out = apply_rope(*be, q, angles);
  EXPECT_TRUE(out.is_contiguous());
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), rope_ref(q, angles)), 1e-6);
  // A strided D (here from a [D, ...] layout) is packed first, with the same result.
  const Tensor dfirst = testing::random_tensor({6, 1, 3, 2}, 4).permute({1, 2, 3, 0});
  const Tensor a2 = rope_angles_3d({1, 1, 3}, {2, 2, 2}, 10000.0).view({3, 3});
  EXPECT_LT(testing::relative_error(apply_rope(*be, dfirst, a2).to_vector_f32(), rope_ref(dfirst, a2)), 1e-6);
}

TEST_F(RopeTest, ApplyRopeWith3dAngles) {
  const std::array<std::int64_t, 3> grid = {2, 3, 3};
  const Tensor angles = rope_angles_3d(grid, {4, 2, 2}, 10000.0);  // [18, 4]
  const Tensor x = testing::random_tensor({1, 18, 2, 8}, 5);
  const Tensor strided_angles = contiguous(*be, angles.transpose(0, 1)).transpose(0, 1);
  const Tensor out = apply_rope(*be, x, strided_angles);  // strided angles are packed
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), rope_ref(x, angles)), 1e-6);
}

TEST_F(RopeTest, RejectsBadArgumentsNamingTheOp) {
  const Tensor x = testing::random_tensor({1, 4, 2, 6}, 6);
  const Tensor angles = rope_angles_1d(4, 6, 10000.0);
  const auto other = make_backend(Device::cpu(1));
  const auto named = ThrowsMessage<InvalidArgument>(HasSubstr("apply_rope"));
  EXPECT_THAT([&] { apply_rope(*be, x.narrow(3, 0, 5), rope_angles_1d(4, 6, 1.0).narrow(1, 0, 2)); }, named);
  EXPECT_THAT([&] { apply_rope(*be, x.select(0, 0), angles); }, named);
  EXPECT_THAT([&] { apply_rope(*be, x, rope_angles_1d(5, 6, 10000.0)); }, named);
  EXPECT_THAT([&] { apply_rope(*be, x, rope_angles_1d(4, 8, 10000.0)); }, named);
  EXPECT_THAT([&] { apply_rope(*be, x, angles.view({4, 3, 1})); }, named);
  EXPECT_THAT([&] { apply_rope(*be, x, cast(*be, angles, DType::bf16)); }, named);
  EXPECT_THAT([&] { apply_rope(*be, cast(*be, x, DType::bf16), angles); }, named);
  EXPECT_THAT([&] { apply_rope(*be, x, transfer(*be, angles, *other)); }, named);
  EXPECT_THAT([&] { apply_rope(*be, transfer(*be, x, *other), angles); }, named);
  EXPECT_THAT([&] { apply_rope(*be, x, Tensor()); }, named);

  const auto r1 = ThrowsMessage<InvalidArgument>(HasSubstr("rope_angles_1d"));
  EXPECT_THAT([] { rope_angles_1d(4, 5, 10000.0); }, r1);
  EXPECT_THAT([] { rope_angles_1d(4, 0, 10000.0); }, r1);
  EXPECT_THAT([] { rope_angles_1d(-1, 4, 10000.0); }, r1);
  EXPECT_THAT([] { rope_angles_1d(4, 4, 0.0); }, r1);
  const auto r3 = ThrowsMessage<InvalidArgument>(HasSubstr("rope_angles_3d"));
  EXPECT_THAT([] { rope_angles_3d({1, 2, 3}, {4, 3, 4}, 10000.0); }, r3);
  EXPECT_THAT([] { rope_angles_3d({1, 2, 3}, {4, 0, 4}, 10000.0); }, r3);
  EXPECT_THAT([] { rope_angles_3d({1, -2, 3}, {4, 4, 4}, 10000.0); }, r3);
  EXPECT_THAT([] { rope_angles_3d({1, 2, 3}, {4, 4, 4}, -1.0); }, r3);
}

}  // namespace
}  // namespace ditserve
