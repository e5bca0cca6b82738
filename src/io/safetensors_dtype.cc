#include "io/safetensors_dtype.h"

#include <array>

#include "tensor/error.h"

namespace ditserve {
namespace {

constexpr std::array<SafetensorsDType, 17> kDTypes{{
    {"F32", 4, DType::f32},
    {"BF16", 2, DType::bf16},
    {"F16", 2, DType::f16},
    {"I32", 4, DType::i32},
    {"I64", 8, DType::i64},
    {"U8", 1, DType::u8},
    {"F64", 8, std::nullopt},
    {"I8", 1, std::nullopt},
    {"I16", 2, std::nullopt},
    {"U16", 2, std::nullopt},
    {"U32", 4, std::nullopt},
    {"U64", 8, std::nullopt},
    {"BOOL", 1, std::nullopt},
    {"F8_E4M3", 1, std::nullopt},
    {"F8_E5M2", 1, std::nullopt},
    {"F8_E8M0", 1, std::nullopt},
    {"C64", 8, std::nullopt},
}};

}  // namespace

std::optional<SafetensorsDType> find_safetensors_dtype(std::string_view name) {
  for (const auto& entry : kDTypes) {
    if (entry.name == name) return entry;
  }
  return std::nullopt;
}

std::string_view safetensors_dtype_name(DType dtype) {
  for (const auto& entry : kDTypes) {
    if (entry.dtype == dtype) return entry.name;
  }
  throw Error("safetensors: no format name for dtype " + std::string(dtype_name(dtype)));
}

}  // namespace ditserve
