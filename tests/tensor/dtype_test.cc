#include "tensor/dtype.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

std::string quoted(const char* text) { return std::string(1, '\'').append(text).append(1, '\''); }

constexpr DType kAll[] = {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8};

TEST(DType, SizesAndFloatingness) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_EQ(dtype_size(DType::i32), 4u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
  EXPECT_EQ(dtype_size(DType::u8), 1u);
  EXPECT_TRUE(is_floating(DType::f32));
  EXPECT_TRUE(is_floating(DType::bf16));
  EXPECT_TRUE(is_floating(DType::f16));
  EXPECT_FALSE(is_floating(DType::i32));
  EXPECT_FALSE(is_floating(DType::i64));
  EXPECT_FALSE(is_floating(DType::u8));
}

TEST(DType, NamesRoundTripThroughParse) {
  for (DType d : kAll) EXPECT_EQ(parse_dtype(dtype_name(d)), d);
  EXPECT_EQ(dtype_name(DType::bf16), "bf16");
  EXPECT_EQ(dtype_name(DType::i64), "i64");
}

TEST(DType, ParseRejectsUnknownNamesNamingThem) {
  for (const char* name : {"", "float32", "F32", "bfloat16", "fp16", "int8"}) {
    EXPECT_THAT([&] { parse_dtype(name); },
                ThrowsMessage<InvalidArgument>(HasSubstr(quoted(name))));
  }
}

TEST(DType, Bf16ExactValuesRoundTrip) {
  for (float v : {0.0f, -0.0f, 1.0f, -2.5f, 0.15625f, 256.0f, 3.0e38f, 1.0e-38f}) {
    const float back = bf16_to_f32(f32_to_bf16(v));
    EXPECT_NEAR(back, v, std::abs(v) * (1.0f / 128)) << v;
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_TRUE(std::signbit(bf16_to_f32(f32_to_bf16(-0.0f))));
}

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1).
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);
  // Just above and below the halfway point round to the nearer neighbour.
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f807fffu)), 0x3f80);
  // The largest finite f32 rounds up to infinity.
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
}

TEST(DType, Bf16KeepsInfinityAndNan) {
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xff80);
  EXPECT_TRUE(std::isinf(bf16_to_f32(0x7f80)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  // A NaN whose payload lives only in the low 16 bits must not turn into infinity.
  const float low_payload_nan = std::bit_cast<float>(0x7f800001u);
  ASSERT_TRUE(std::isnan(low_payload_nan));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(low_payload_nan))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(-low_payload_nan))));
}

TEST(DType, F16ConversionsRoundToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);  // largest finite f16
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even.
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  // Overflow goes to infinity; tiny values become subnormals.
  EXPECT_EQ(f32_to_f16(70000.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(-INFINITY))));
}

TEST(DType, SixteenBitRoundTripIsIdentityOnAllFiniteBitPatterns) {
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const auto b = static_cast<std::uint16_t>(bits);
    const float vb = bf16_to_f32(b);
    if (!std::isnan(vb)) {
      EXPECT_EQ(f32_to_bf16(vb), b) << bits;
    }
    const float vh = f16_to_f32(b);
    if (!std::isnan(vh)) {
      EXPECT_EQ(f32_to_f16(vh), b) << bits;
    }
  }
}

}  // namespace
}  // namespace ditserve
