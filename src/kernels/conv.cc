#include "kernels/conv.h"

#include <string_view>

#include "kernels/copy.h"
#include "kernels/cpu/conv.h"
#include "kernels/dispatch.h"

namespace ditserve {
namespace {

// Shared body of conv2d and conv3d over nd spatial dims; stride and padding use their
// first nd entries (conv2d fills the third with 1 and 0, as cuda::convolution expects).
Tensor convolution(Backend& be, std::string_view op, int nd, const Tensor& x, const Tensor& w,
                   const Tensor& bias, std::array<int, 3> stride, std::array<int, 3> padding,
                   F32Math math) {
  detail::check_float(op, "x", be, x);
  detail::check_float(op, "w", be, w);
  detail::check_same_dtype(op, x, w);
  const char* x_layout = nd == 2 ? "[N, H, W, C]" : "[N, D, H, W, C]";
  const char* w_layout = nd == 2 ? "[O, kh, kw, C]" : "[O, kd, kh, kw, C]";
  DITSERVE_CHECK(x.dim() == nd + 2, op, ": x is ", x.describe(), "; expected ", x_layout);
  DITSERVE_CHECK(w.dim() == nd + 2, op, ": w is ", w.describe(), "; expected ", w_layout);
  const std::int64_t channels = x.size(-1), outputs = w.size(0);
  DITSERVE_CHECK(w.size(-1) == channels, op, ": w ", w.describe(), " does not take the ", channels,
                 " channels of x ", x.describe());
  DITSERVE_CHECK(channels > 0, op, ": x ", x.describe(), " has no channels");
  Shape shape = {x.size(0)};
  for (int i = 0; i < nd; ++i) {
    const std::int64_t in = x.size(1 + i), kernel = w.size(1 + i);
    DITSERVE_CHECK(stride[i] >= 1 && padding[i] >= 0, op, ": spatial dim ", i, " has stride ",
                   stride[i], " and padding ", padding[i], "; need stride >= 1, padding >= 0");
    DITSERVE_CHECK(kernel >= 1 && in + 2 * padding[i] >= kernel, op, ": kernel ", w.describe(),
                   " does not fit padded input ", x.describe(), " in spatial dim ", i);
    shape.push_back((in + 2 * padding[i] - kernel) / stride[i] + 1);
  }
  shape.push_back(outputs);
  if (bias.defined()) {
    detail::check_float(op, "bias", be, bias);
    detail::check_same_dtype(op, x, bias);
    DITSERVE_CHECK(bias.dim() == 1 && bias.size(0) == outputs, op, ": bias is ", bias.describe(),
                   "; expected [", outputs, "] for w ", w.describe());
  }
  Tensor out = be.empty(shape, x.dtype());
  if (out.numel() == 0) return out;
  const Tensor xc = contiguous(be, x), wc = contiguous(be, w);
  const Tensor bc = bias.defined() ? contiguous(be, bias) : Tensor();
  if (be.device().is_cpu()) {
    if (nd == 2) {  // a 2-D convolution is a 3-D one of depth 1
      cpu::conv3d(out.unsqueeze(1), xc.unsqueeze(1), wc.unsqueeze(1), bc, {1, stride[0], stride[1]},
                  {0, padding[0], padding[1]});
    } else {
      cpu::conv3d(out, xc, wc, bc, stride, padding);
    }
  } else {
    DITSERVE_ON_CUDA(cuda::convolution(cuda::as_cuda(be), out, xc, wc, bc, nd, stride, padding,
                                       math == F32Math::tf32));
  }
  return out;
}

}  // namespace

Tensor conv2d(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
              std::array<int, 2> stride, std::array<int, 2> padding, F32Math math) {
  return convolution(be, "conv2d", 2, x, w, bias, {stride[0], stride[1], 1},
                     {padding[0], padding[1], 0}, math);
}

Tensor conv3d(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
              std::array<int, 3> stride, std::array<int, 3> padding, F32Math math) {
  return convolution(be, "conv3d", 3, x, w, bias, stride, padding, math);
}

}  // namespace ditserve
