#pragma once
// Row addressing for CPU kernels that walk strided views (e.g. inputs expanded to an
// output's shape with zero strides): a "row" is one index of all dims but the last.

#include <cstdint>

#include "tensor/tensor.h"

namespace ditserve::cpu {

// Number of rows of `shape` (1 for a 0-dim shape).
inline std::int64_t row_count(const Shape& shape) {
  if (shape.empty()) return 1;
  const std::int64_t inner = shape.back();
  return inner == 0 ? 0 : shape_numel(shape) / inner;
}

// Element offset of row `row` (row-major over all dims but the last) of a view.
// Stateless, so rows can be visited in parallel.
inline std::int64_t row_offset(const Shape& shape, const Shape& strides, std::int64_t row) {
  std::int64_t offset = 0;
  for (std::size_t i = shape.empty() ? 0 : shape.size() - 1; i-- > 0;) {
    offset += (row % shape[i]) * strides[i];
    row /= shape[i];
  }
  return offset;
}

// Stride of the last dim (0-dim tensors have one element).
inline std::int64_t inner_stride(const Tensor& t) { return t.dim() == 0 ? 1 : t.stride(-1); }
inline std::int64_t inner_size(const Tensor& t) { return t.dim() == 0 ? 1 : t.size(-1); }

}  // namespace ditserve::cpu
