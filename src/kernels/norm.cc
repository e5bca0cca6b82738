#include "kernels/norm.h"

#include <algorithm>
#include <string>

#include "kernels/copy.h"
#include "kernels/cpu/norm.h"
#include "kernels/dispatch.h"

namespace ditserve {
namespace {

// x must have a last dim to normalise over.
void check_input(std::string_view op, Backend& be, const Tensor& x, float eps) {
  detail::check_float(op, "x", be, x);
  DITSERVE_CHECK(x.dim() >= 1, op, ": x is ", x.describe(), "; at least one dim is required");
  DITSERVE_CHECK(eps >= 0.0f, op, ": eps must be >= 0, got ", eps);
}

// An optional per-channel parameter: undefined, or [C] with x's dtype on x's device.
// Returns it contiguous (the kernels index it densely).
Tensor channel_param(Backend& be, std::string_view op, std::string_view what, const Tensor& p,
                     const Tensor& x, bool required) {
  if (!p.defined()) {
    DITSERVE_CHECK(!required, op, ": ", what, " is required");
    return p;
  }
  detail::check_float(op, what, be, p);
  detail::check_same_dtype(op, x, p);
  DITSERVE_CHECK(p.dim() == 1 && p.size(0) == x.size(-1), op, ": ", what, " is ",
                 p.describe(), " but x is ", x.describe(), "; expected [", x.size(-1), "]");
  return contiguous(be, p);
}

// shift/scale of modulate_layer_norm: broadcastable to x without growing it, expanded to
// x's shape with a unit or zero stride on the last dim (what the CUDA kernel takes).
Tensor modulation_param(Backend& be, std::string_view what, const Tensor& p, const Tensor& x) {
  constexpr std::string_view op = "modulate_layer_norm";
  detail::check_float(op, what, be, p);
  detail::check_same_dtype(op, x, p);
  bool fits = p.dim() <= x.dim();
  for (std::int64_t i = 1; fits && i <= p.dim(); ++i) {
    fits = p.size(-i) == 1 || p.size(-i) == x.size(-i);
  }
  DITSERVE_CHECK(fits, op, ": ", what, " is ", p.describe(), ", which does not broadcast to x ",
                 x.describe());
  const bool dense_last = p.dim() == 0 || p.size(-1) == 1 || p.stride(-1) == 1;
  return (dense_last ? p : contiguous(be, p)).expand(x.shape());
}

}  // namespace

Tensor layer_norm(Backend& be, const Tensor& x, const Tensor& weight, const Tensor& bias,
                  float eps) {
  constexpr std::string_view op = "layer_norm";
  check_input(op, be, x, eps);
  const Tensor w = channel_param(be, op, "weight", weight, x, /*required=*/false);
  const Tensor b = channel_param(be, op, "bias", bias, x, /*required=*/false);
  const Tensor src = contiguous(be, x);
  Tensor out = be.empty(x.shape(), x.dtype());
  if (be.device().is_cpu()) {
    cpu::layer_norm(out, src, w, b, eps);
  } else {
    DITSERVE_ON_CUDA(cuda::layer_norm(cuda::as_cuda(be), out, src, w, b, eps));
  }
  return out;
}

Tensor rms_norm(Backend& be, const Tensor& x, const Tensor& weight, float eps) {
  constexpr std::string_view op = "rms_norm";
  check_input(op, be, x, eps);
  const Tensor w = channel_param(be, op, "weight", weight, x, /*required=*/false);
  const Tensor src = contiguous(be, x);
  Tensor out = be.empty(x.shape(), x.dtype());
  if (be.device().is_cpu()) {
    cpu::rms_norm(out, src, w, eps);
  } else {
    DITSERVE_ON_CUDA(cuda::rms_norm(cuda::as_cuda(be), out, src, w, eps));
  }
  return out;
}

Tensor modulate_layer_norm(Backend& be, const Tensor& x, const Tensor& shift,
                           const Tensor& scale, float eps) {
  constexpr std::string_view op = "modulate_layer_norm";
  check_input(op, be, x, eps);
  const Tensor sh = modulation_param(be, "shift", shift, x);
  const Tensor sc = modulation_param(be, "scale", scale, x);
  const Tensor src = contiguous(be, x);
  Tensor out = be.empty(x.shape(), x.dtype());
  if (be.device().is_cpu()) {
    cpu::modulate_layer_norm(out, src, sh, sc, eps);
  } else {
    DITSERVE_ON_CUDA(cuda::modulate_layer_norm(cuda::as_cuda(be), out, src, sh, sc, eps));
  }
  return out;
}

Tensor group_norm(Backend& be, const Tensor& x, int groups, const Tensor& weight,
                  const Tensor& bias, float eps) {
  constexpr std::string_view op = "group_norm";
  check_input(op, be, x, eps);
  DITSERVE_CHECK(x.dim() >= 2, op, ": x is ", x.describe(),
                 "; expected channels-last [N, *spatial, C]");
  const std::int64_t c = x.size(-1);
  DITSERVE_CHECK(groups > 0 && c % groups == 0, op, ": ", groups,
                 " groups do not divide the ", c, " channels of x ", x.describe());
  const Tensor w = channel_param(be, op, "weight", weight, x, /*required=*/true);
  const Tensor b = channel_param(be, op, "bias", bias, x, /*required=*/true);
  const Tensor src = contiguous(be, x);
  Tensor out = be.empty(x.shape(), x.dtype());
  if (be.device().is_cpu()) {
    cpu::group_norm(out, src, groups, w, b, eps);
  } else {
    DITSERVE_ON_CUDA({
      const Shape flat = {x.size(0), x.numel() / std::max<std::int64_t>(x.size(0) * c, 1), c};
      cuda::group_norm(cuda::as_cuda(be), out.view(flat), src.view(flat), groups, w, b, eps);
    });
  }
  return out;
}

}  // namespace ditserve
