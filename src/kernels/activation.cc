#include "kernels/activation.h"

#include "kernels/copy.h"
#include "kernels/cpu/activation.h"
#include "kernels/dispatch.h"
#include "kernels/gemm.h"

namespace ditserve {
namespace {

Tensor pointwise(Backend& be, std::string_view op, const Tensor& x, Activation act) {
  detail::check_float(op, "x", be, x);
  const Tensor src = contiguous(be, x);
  Tensor out = be.empty(x.shape(), x.dtype());
  if (be.device().is_cpu()) {
    if (act == Activation::silu) {
      cpu::silu(out, src);
    } else {
      cpu::gelu(out, src, act == Activation::gelu_tanh);
    }
  } else {
    DITSERVE_ON_CUDA(cuda::activation(cuda::as_cuda(be), act, out, src));
  }
  return out;
}

}  // namespace

Tensor gelu(Backend& be, const Tensor& x, bool tanh_approximation) {
  return pointwise(be, "gelu", x,
                   tanh_approximation ? Activation::gelu_tanh : Activation::gelu_exact);
}

Tensor silu(Backend& be, const Tensor& x) { return pointwise(be, "silu", x, Activation::silu); }

Tensor softmax(Backend& be, const Tensor& x) {
  detail::check_float("softmax", "x", be, x);
  DITSERVE_CHECK(x.dim() >= 1 && x.size(-1) > 0, "softmax: x is ", x.describe(),
                 "; a non-empty last dim is required");
  const Tensor src = contiguous(be, x);
  Tensor out = be.empty(x.shape(), x.dtype());
  if (be.device().is_cpu()) {
    cpu::softmax(out, src);
  } else {
    DITSERVE_ON_CUDA(cuda::softmax(cuda::as_cuda(be), out, src));
  }
  return out;
}

}  // namespace ditserve
