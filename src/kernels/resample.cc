#include "kernels/resample.h"

#include <cstring>

#include "kernels/copy.h"
#include "kernels/dispatch.h"

namespace ditserve {

// Both ops are pure data movement, so they work for every dtype and are built from views
// and copy_into: no kernel of their own on either backend.

Tensor upsample_nearest(Backend& be, const Tensor& x, const std::vector<int>& factors) {
  detail::check_on_backend("upsample_nearest", "x", be, x);
  const auto spatial = static_cast<std::int64_t>(factors.size());
  DITSERVE_CHECK(spatial >= 1 && x.dim() == spatial + 2, "upsample_nearest: x is ", x.describe(),
                 "; expected [N, *spatial, C] with ", spatial, " spatial dims (one per factor)");
  // out viewed as [N, s1, f1, s2, f2, ..., C]; x as [N, s1, 1, s2, 1, ..., C] broadcasts.
  Shape out_shape = {x.size(0)}, split_shape = {x.size(0)};
  Tensor source = x;
  for (std::int64_t i = 0; i < spatial; ++i) {
    const int f = factors[i];
    DITSERVE_CHECK(f >= 1, "upsample_nearest: factor ", i, " is ", f, "; must be >= 1");
    const std::int64_t size = x.size(1 + i);
    out_shape.push_back(size * f);
    split_shape.push_back(size);
    split_shape.push_back(f);
    source = source.unsqueeze(2 + 2 * i);
  }
  out_shape.push_back(x.size(-1));
  split_shape.push_back(x.size(-1));
  Tensor out = be.empty(out_shape, x.dtype());
  if (out.numel() > 0) copy_into(be, out.view(split_shape), source);
  return out;
}

Tensor pad(Backend& be, const Tensor& x,
           const std::vector<std::pair<std::int64_t, std::int64_t>>& pads) {
  detail::check_on_backend("pad", "x", be, x);
  DITSERVE_CHECK(static_cast<std::int64_t>(pads.size()) == x.dim(), "pad: ", pads.size(),
                 " (before, after) pairs given for ", x.describe(), "; need one per dim");
  Shape shape = x.shape();
  bool padded = false;
  for (std::size_t i = 0; i < pads.size(); ++i) {
    const auto [before, after] = pads[i];
    DITSERVE_CHECK(before >= 0 && after >= 0, "pad: dim ", i, " has padding (", before, ", ", after,
                   "); must be non-negative");
    shape[i] += before + after;
    padded = padded || before > 0 || after > 0;
  }
  Tensor out = be.empty(shape, x.dtype());
  if (out.numel() == 0) return out;
  if (padded) {
    if (be.device().is_cpu()) {
      std::memset(out.raw_data(), 0, out.nbytes());
    } else {
      DITSERVE_ON_CUDA(cuda::fill_zero(cuda::as_cuda(be), out));
    }
  }
  Tensor interior = out;
  for (std::size_t i = 0; i < pads.size(); ++i) {
    interior = interior.narrow(static_cast<std::int64_t>(i), pads[i].first, x.size(i));
  }
  if (x.numel() > 0) copy_into(be, interior, x);
  return out;
}

}  // namespace ditserve
