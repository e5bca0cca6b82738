#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ditserve {

enum class DType : std::uint8_t { f32, bf16, f16, i32, i64, u8 };

std::size_t dtype_size(DType dtype);
// "f32", "bf16", … as used in the CLI and in error messages.
std::string_view dtype_name(DType dtype);
// Accepts the names above; throws InvalidArgument naming the text otherwise.
DType parse_dtype(std::string_view name);
bool is_floating(DType dtype);

// Round-to-nearest-even conversions between f32 and the 16-bit float formats.
std::uint16_t f32_to_bf16(float value);
float bf16_to_f32(std::uint16_t bits);
std::uint16_t f32_to_f16(float value);
float f16_to_f32(std::uint16_t bits);

}  // namespace ditserve
