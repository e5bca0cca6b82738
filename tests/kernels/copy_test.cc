#include "kernels/copy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <numeric>

#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

Tensor iota(const Shape& shape) { return testing::iota_tensor(shape); }

template <typename T>
Tensor host_values(const std::vector<T>& values, DType dtype) {
  Tensor t = Tensor::empty_host({static_cast<std::int64_t>(values.size())}, dtype);
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

template <typename T>
std::vector<T> values_of(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

class CopyTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu(0));
};

TEST_F(CopyTest, ContiguousReturnsContiguousInputsAsIs) {
  const Tensor x = iota({3, 4});
  const Tensor y = contiguous(*be, x);
  EXPECT_EQ(y.storage(), x.storage());
  EXPECT_EQ(y.raw_data(), x.raw_data());
}

TEST_F(CopyTest, ContiguousPacksStridedViews) {
  const Tensor x = testing::random_tensor({3, 5, 7}, 1);
  for (const Tensor& view : {x.permute({2, 0, 1}), x.narrow(1, 1, 3), x.select(2, 6),
                             x.narrow(2, 2, 1).expand({2, 3, 5, 4})}) {
    const Tensor y = contiguous(*be, view);
    EXPECT_TRUE(y.is_contiguous());
    EXPECT_NE(y.storage(), x.storage());
    EXPECT_EQ(y.shape(), view.shape());
    EXPECT_THAT(y.to_vector_f32(), ElementsAreArray(view.to_vector_f32()));
  }
}

TEST_F(CopyTest, ContiguousHandlesEveryElementSize) {
  for (DType dtype : {DType::u8, DType::bf16, DType::i32, DType::i64}) {
    const Tensor x = cast(*be, iota({4, 6}), dtype);
    const Tensor y = contiguous(*be, x.transpose(0, 1));
    EXPECT_EQ(y.dtype(), dtype);
    EXPECT_THAT(y.to_vector_f32(), ElementsAreArray(x.transpose(0, 1).to_vector_f32()))
        << dtype_name(dtype);
  }
}

TEST_F(CopyTest, CopyIntoBroadcastsIntoAStridedDestination) {
  Tensor big = Tensor::from_vector(std::vector<float>(2 * 3 * 6, -1.0f), {2, 3, 6});
  const Tensor dst = big.narrow(2, 1, 4);  // [2, 3, 4], row stride 6
  const Tensor src = iota({3, 1});
  copy_into(*be, dst, src);
  for (std::int64_t i = 0; i < 2; ++i) {
    for (std::int64_t j = 0; j < 3; ++j) {
      for (std::int64_t k = 0; k < 6; ++k) {
        const float expected = (k >= 1 && k < 5) ? static_cast<float>(j) : -1.0f;
        EXPECT_EQ(big.item_f32({i, j, k}), expected) << i << j << k;
      }
    }
  }
}

TEST_F(CopyTest, CopyIntoAcceptsAPermutedSource) {
  const Tensor src = testing::random_tensor({4, 3}, 2);
  Tensor dst = Tensor::empty_host({3, 4}, DType::f32);
  copy_into(*be, dst, src.transpose(0, 1));
  EXPECT_THAT(dst.to_vector_f32(), ElementsAreArray(src.transpose(0, 1).to_vector_f32()));
}

TEST_F(CopyTest, CopyIntoRejectsBadArguments) {
  const Tensor dst = Tensor::empty_host({2, 3}, DType::f32);
  const auto named = ThrowsMessage<InvalidArgument>(HasSubstr("copy_into"));
  EXPECT_THAT([&] { copy_into(*be, dst, Tensor::empty_host({2, 3}, DType::bf16)); }, named);
  EXPECT_THAT([&] { copy_into(*be, dst, iota({3, 2})); }, named);
  EXPECT_THAT([&] { copy_into(*be, dst, iota({1, 2, 3})); }, named);
  EXPECT_THAT([&] { copy_into(*be, dst, Tensor()); }, named);
  const auto other = make_backend(Device::cpu(1));
  EXPECT_THAT([&] { copy_into(*be, dst, other->empty({2, 3}, DType::f32)); }, named);
  EXPECT_THAT([&] { copy_into(*other, dst, dst); }, named);
}

TEST_F(CopyTest, CastF32ToBf16RoundsToNearestEven) {
  const std::vector<float> in = {1.0f,
                                 std::bit_cast<float>(0x3f808000u),  // tie -> even (down)
                                 std::bit_cast<float>(0x3f818000u),  // tie -> even (up)
                                 std::bit_cast<float>(0x3f808001u),  // above the tie -> up
                                 -3.5f, 0.0f, INFINITY};
  const Tensor out = cast(*be, Tensor::from_vector(in, {7}), DType::bf16);
  EXPECT_EQ(out.dtype(), DType::bf16);
  EXPECT_THAT(values_of<std::uint16_t>(out),
              ElementsAre(0x3f80, 0x3f80, 0x3f82, 0x3f81, 0xc060, 0x0000, 0x7f80));
  const Tensor nan = cast(*be, Tensor::from_vector({NAN}, {1}), DType::bf16);
  EXPECT_TRUE(std::isnan(nan.item_f32({0})));
}

TEST_F(CopyTest, CastF32ToF16RoundsToNearestEven) {
  const float tie = 1.0f + std::ldexp(1.0f, -11);
  const float tie_up = 1.0f + 3 * std::ldexp(1.0f, -11);
  const Tensor out =
      cast(*be, Tensor::from_vector({1.0f, tie, tie_up, 65504.0f, 1e6f, -0.5f}, {6}), DType::f16);
  EXPECT_THAT(values_of<std::uint16_t>(out),
              ElementsAre(0x3c00, 0x3c00, 0x3c02, 0x7bff, 0x7c00, 0xb800));
}

TEST_F(CopyTest, CastBetweenHalfFormatsGoesThroughF32) {
  const Tensor x = testing::random_tensor({5, 9}, 3, -100.0f, 100.0f);
  const Tensor h = cast(*be, x, DType::f16);
  const Tensor b = cast(*be, h, DType::bf16);
  const Tensor back = cast(*be, b, DType::f32);
  const std::vector<float> src = x.to_vector_f32();
  const std::vector<std::uint16_t> bits = values_of<std::uint16_t>(b);
  for (std::size_t i = 0; i < src.size(); ++i) {
    const float expected = bf16_to_f32(f32_to_bf16(f16_to_f32(f32_to_f16(src[i]))));
    EXPECT_EQ(bf16_to_f32(bits[i]), expected);
    EXPECT_EQ(back.item_f32({static_cast<std::int64_t>(i / 9), static_cast<std::int64_t>(i % 9)}),
              expected);
  }
  const Tensor f16_again = cast(*be, b, DType::f16);
  EXPECT_EQ(f16_again.dtype(), DType::f16);
  EXPECT_LT(testing::relative_error(f16_again, x), 1e-2);
}

TEST_F(CopyTest, CastFloatToIntTruncatesTowardZero) {
  const Tensor x = Tensor::from_vector({1.7f, -1.7f, 0.2f, 250.9f, -1e6f}, {5});
  EXPECT_THAT(values_of<std::int32_t>(cast(*be, x, DType::i32)),
              ElementsAre(1, -1, 0, 250, -1000000));
  EXPECT_THAT(values_of<std::int64_t>(cast(*be, x, DType::i64)),
              ElementsAre(1, -1, 0, 250, -1000000));
  EXPECT_THAT(values_of<std::uint8_t>(cast(*be, x.narrow(0, 2, 2), DType::u8)), ElementsAre(0, 250));
}

TEST_F(CopyTest, CastBetweenIntegersKeepsLargeValues) {
  const Tensor big = host_values<std::int64_t>({(1LL << 40) + 1, -7, 123456789}, DType::i64);
  // Integer-to-integer casts do not pass through f32 (which would round 2^40 + 1).
  const Tensor i32 = cast(*be, big.narrow(0, 1, 2), DType::i32);
  EXPECT_THAT(values_of<std::int32_t>(i32), ElementsAre(-7, 123456789));
  const Tensor i64 = cast(*be, i32, DType::i64);
  EXPECT_THAT(values_of<std::int64_t>(i64), ElementsAre(-7, 123456789));
  const Tensor same = cast(*be, big, DType::i64);
  EXPECT_EQ(values_of<std::int64_t>(same)[0], (1LL << 40) + 1);
  const Tensor u8 = cast(*be, host_values<std::int32_t>({0, 17, 255}, DType::i32), DType::u8);
  EXPECT_THAT(values_of<std::uint8_t>(u8), ElementsAre(0, 17, 255));
  EXPECT_THAT(values_of<std::int64_t>(cast(*be, u8, DType::i64)), ElementsAre(0, 17, 255));
  EXPECT_THAT(cast(*be, u8, DType::f32).to_vector_f32(), ElementsAre(0.0f, 17.0f, 255.0f));
  EXPECT_THAT(cast(*be, i32, DType::bf16).to_vector_f32(), ElementsAre(-7.0f, bf16_to_f32(f32_to_bf16(123456789.0f))));
}

TEST_F(CopyTest, CastReadsStridedInputs) {
  const Tensor x = testing::random_tensor({6, 4}, 4);
  const Tensor y = cast(*be, x.transpose(0, 1), DType::f32);
  EXPECT_TRUE(y.is_contiguous());
  EXPECT_THAT(y.to_vector_f32(), ElementsAreArray(x.transpose(0, 1).to_vector_f32()));
  EXPECT_THAT([&] { cast(*be, Tensor(), DType::f32); },
              ThrowsMessage<InvalidArgument>(HasSubstr("cast")));
}

TEST_F(CopyTest, TransferBetweenCpuDevices) {
  const auto other = make_backend(Device::cpu(2));
  const Tensor x = testing::random_tensor({3, 4, 5}, 5);
  const Tensor moved = transfer(*be, x.permute({1, 2, 0}), *other);
  EXPECT_EQ(moved.device(), Device::cpu(2));
  EXPECT_TRUE(moved.is_contiguous());
  EXPECT_THAT(moved.to_vector_f32(), ElementsAreArray(x.permute({1, 2, 0}).to_vector_f32()));
  const Tensor back = transfer(*other, moved, *be);
  EXPECT_EQ(back.device(), Device::cpu(0));
  EXPECT_THAT(back.to_vector_f32(), ElementsAreArray(moved.to_vector_f32()));
  const Tensor none = transfer(*be, Tensor::empty_host({0, 3}, DType::bf16), *other);
  EXPECT_EQ(none.device(), Device::cpu(2));
  EXPECT_EQ(none.dtype(), DType::bf16);
  EXPECT_EQ(none.numel(), 0);
  EXPECT_THAT([&] { transfer(*other, x, *be); },
              ThrowsMessage<InvalidArgument>(HasSubstr("transfer")));
}

TEST_F(CopyTest, ConcatJoinsStridedPartsAlongAnyDim) {
  const Tensor a = testing::random_tensor({2, 3, 4}, 6);
  const Tensor b = testing::random_tensor({4, 5, 2}, 7).permute({2, 1, 0}).narrow(1, 1, 3);
  const Tensor c = testing::random_tensor({2, 3, 1}, 8);
  const Tensor out = concat(*be, {a, b, c}, -1);
  ASSERT_THAT(out.shape(), ElementsAre(2, 3, 9));
  for (std::int64_t i = 0; i < 2; ++i) {
    for (std::int64_t j = 0; j < 3; ++j) {
      for (std::int64_t k = 0; k < 9; ++k) {
        const float expected = k < 4   ? a.item_f32({i, j, k})
                               : k < 8 ? b.item_f32({i, j, k - 4})
                                       : c.item_f32({i, j, 0});
        EXPECT_EQ(out.item_f32({i, j, k}), expected);
      }
    }
  }
  const Tensor rows = concat(*be, {a, a.narrow(0, 1, 1)}, 0);
  EXPECT_THAT(rows.shape(), ElementsAre(3, 3, 4));
  EXPECT_THAT(rows.select(0, 2).to_vector_f32(), ElementsAreArray(a.select(0, 1).to_vector_f32()));
  const Tensor single = concat(*be, {b}, 1);
  EXPECT_THAT(single.to_vector_f32(), ElementsAreArray(b.to_vector_f32()));
}

TEST_F(CopyTest, ConcatRejectsBadArguments) {
  const Tensor a = iota({2, 3});
  const auto named = ThrowsMessage<InvalidArgument>(HasSubstr("concat"));
  EXPECT_THAT([&] { concat(*be, {}, 0); }, named);
  EXPECT_THAT([&] { concat(*be, {a, iota({2, 4})}, 0); }, named);
  EXPECT_THAT([&] { concat(*be, {a, iota({6})}, 0); }, named);
  EXPECT_THAT([&] { concat(*be, {a, cast(*be, a, DType::bf16)}, 0); }, named);
  EXPECT_THAT([&] { concat(*be, {a, a}, 2); }, named);
  EXPECT_THAT([&] { concat(*be, {a, a}, -3); }, named);
  const auto other = make_backend(Device::cpu(1));
  EXPECT_THAT([&] { concat(*be, {a, other->empty({2, 3}, DType::f32)}, 0); }, named);
  EXPECT_THAT([&] { concat(*be, {a, Tensor()}, 0); }, named);
}

}  // namespace
}  // namespace ditserve
