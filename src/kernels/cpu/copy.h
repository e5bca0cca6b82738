#pragma once
#include "tensor/tensor.h"

namespace ditserve::cpu {

// dst (any strides) = src (same shape, any strides incl. 0); same dtype, any dtype.
void copy_strided(const Tensor& dst, const Tensor& src);
// out = src converted element-wise; both contiguous, equal numel.
void cast(const Tensor& out, const Tensor& src);

}  // namespace ditserve::cpu
