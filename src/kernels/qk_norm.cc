#include "kernels/qk_norm.h"

#include <cmath>

#include "kernels/copy.h"
#include "kernels/dispatch.h"
#include "kernels/norm.h"
#include "kernels/rope.h"

namespace ditserve {

NormedQK qk_norm_rope(Backend& be, const Tensor& qkv, const Tensor& q_weight,
                      const Tensor& k_weight, float eps, const Tensor& angles) {
  constexpr std::string_view op = "qk_norm_rope";
  detail::check_float(op, "qkv", be, qkv);
  DITSERVE_CHECK(qkv.dim() == 5 && qkv.size(2) == 3 && (qkv.size(4) <= 1 || qkv.stride(4) == 1),
                 op, ": qkv is ", qkv.describe(), "; expected [N, L, 3, H, D] with unit stride on D");
  const std::int64_t d = qkv.size(4);
  for (const Tensor* w : {&q_weight, &k_weight}) {
    detail::check_on_backend(op, "weight", be, *w);
    DITSERVE_CHECK(w->dim() == 1 && w->size(0) == d && w->dtype() == qkv.dtype(), op,
                   ": weight is ", w->describe(), "; expected [", d, "] ", dtype_name(qkv.dtype()));
  }
  DITSERVE_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps ", eps, " must be finite and >= 0");
  if (angles.defined()) {
    detail::check_on_backend(op, "angles", be, angles);
    DITSERVE_CHECK(d % 2 == 0 && angles.dtype() == DType::f32 && angles.dim() == 2 &&
                       angles.size(0) == qkv.size(1) && angles.size(1) == d / 2,
                   op, ": angles is ", angles.describe(), "; expected f32 [", qkv.size(1), ", ",
                   d / 2, "] (and an even head dim, got ", d, ")");
  }
  NormedQK out{qkv.select(2, 0), qkv.select(2, 1)};
  if (qkv.numel() == 0) return out;
  if (!be.device().is_cpu()) {
    // The fused kernel unless switched off (cuda_kernels.h: short_kernels_enabled).
    DITSERVE_ON_CUDA({
      const Tensor theta = angles.defined() ? contiguous(be, angles) : Tensor();
      if (cuda::short_kernels_enabled() &&
          cuda::qk_norm_rope(cuda::as_cuda(be), qkv, q_weight, k_weight, eps, theta))
        return out;
    });
  }
  // The composition the fused kernel replaces (the CPU backend, and layouts it refuses).
  out.q = rms_norm(be, out.q, q_weight, eps);
  out.k = rms_norm(be, out.k, k_weight, eps);
  if (angles.defined()) {
    out.q = apply_rope(be, out.q, angles);
    out.k = apply_rope(be, out.k, angles);
  }
  return out;
}

}  // namespace ditserve
