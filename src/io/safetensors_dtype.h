#pragma once
// The dtype strings of the safetensors format and how they map to ditserve::DType.

#include <cstddef>
#include <optional>
#include <string_view>

#include "tensor/dtype.h"

namespace ditserve {

struct SafetensorsDType {
  std::string_view name;      // as written in a header: "F32", "BF16", ...
  std::size_t size = 0;       // bytes per element
  std::optional<DType> dtype; // empty for formats ditserve cannot compute with (F64, BOOL, ...)
};

// nullopt when `name` is not a safetensors dtype at all.
std::optional<SafetensorsDType> find_safetensors_dtype(std::string_view name);
std::string_view safetensors_dtype_name(DType dtype);

}  // namespace ditserve
