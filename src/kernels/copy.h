#pragma once
// Moving and re-laying bytes: contiguous copies, dtype casts, transfers between devices.

#include "kernels/backend.h"

namespace ditserve {

// x itself if already contiguous, else a contiguous copy on the same device.
Tensor contiguous(Backend& be, const Tensor& x);
// dst = src element-wise; same dtype and device; src broadcastable to dst's shape;
// both may have any strides (dst must not overlap itself).
void copy_into(Backend& be, const Tensor& dst, const Tensor& src);
// Element-wise dtype conversion (floats round to nearest even); returns contiguous.
Tensor cast(Backend& be, const Tensor& x, DType dtype);
// Contiguous copy of `src` (living on from.device()) onto to.device(). Host results are
// ready on return; device results are ordered on `to`'s stream.
Tensor transfer(Backend& from, const Tensor& src, Backend& to);
// Concatenation along `dim` of tensors with equal other dims, dtype and device.
Tensor concat(Backend& be, const std::vector<Tensor>& parts, std::int64_t dim);

}  // namespace ditserve
