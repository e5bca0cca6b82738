// Rotary position embedding, interleaved pairs: (x[2i], x[2i+1]) at position s rotates
// by angles[s, i].

#include <cstdint>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per unit of `width` elements of the contiguous output [B, S, H, D]: a
// 16-byte pack (width kPack<T>) when x allows it, else one pair (width 2). I is uint32_t
// when the unit count fits in 31 bits (cheaper division).
template <typename T, typename I>
__global__ void rope_kernel(T* out, const T* x, const float* angles, I units, I seq, I heads,
                            I row_units, int width, int half, std::int64_t stride_b,
                            std::int64_t stride_s, std::int64_t stride_h) {
  constexpr int P = kPack<T>;
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I u = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; u < units; u += step) {
    const I iu = u % row_units;
    const I row = u / row_units;  // (b, s, h)
    const I h = row % heads;
    const I bs = row / heads;
    const I s = bs % seq;
    const I b = bs / seq;
    const std::int64_t first = static_cast<std::int64_t>(iu) * width;  // element in the row
    const T* src = x + static_cast<std::int64_t>(b) * stride_b +
                   static_cast<std::int64_t>(s) * stride_s + static_cast<std::int64_t>(h) * stride_h +
                   first;
    const float* theta = angles + static_cast<std::int64_t>(s) * half + first / 2;
    T* dst = out + static_cast<std::int64_t>(u) * width;
    if (width == P) {
      const Pack<T> in = *reinterpret_cast<const Pack<T>*>(src);
      Pack<T> o;
#pragma unroll
      for (int i = 0; i < P / 2; ++i) {
        float sn, cs;
        sincosf(theta[i], &sn, &cs);
        const float x0 = to_f32(in.v[2 * i]), x1 = to_f32(in.v[2 * i + 1]);
        o.v[2 * i] = from_f32<T>(x0 * cs - x1 * sn);
        o.v[2 * i + 1] = from_f32<T>(x1 * cs + x0 * sn);
      }
      *reinterpret_cast<Pack<T>*>(dst) = o;
    } else {
      float sn, cs;
      sincosf(theta[0], &sn, &cs);
      const float x0 = to_f32(src[0]), x1 = to_f32(src[1]);
      dst[0] = from_f32<T>(x0 * cs - x1 * sn);
      dst[1] = from_f32<T>(x1 * cs + x0 * sn);
    }
  }
}

}  // namespace

void rope(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& angles) {
  constexpr std::string_view op = "rope";
  DITSERVE_CHECK(x.dim() == 4 && x.size(3) % 2 == 0 && (x.size(3) == 0 || x.stride(3) == 1),
                 op, ": x is ", x.describe(), "; expected [B, S, H, D], D even, unit stride on D");
  DITSERVE_CHECK(out.is_contiguous() && out.shape() == x.shape() && out.dtype() == x.dtype(), op,
                 ": out is ", out.describe(), "; expected contiguous like x ", x.describe());
  const std::int64_t half = x.size(3) / 2;
  DITSERVE_CHECK(angles.dtype() == DType::f32 && angles.is_contiguous() && angles.dim() == 2 &&
                     angles.size(0) == x.size(1) && angles.size(1) == half,
                 op, ": angles is ", angles.describe(), "; expected contiguous f32 [",
                 x.size(1), ", ", half, "]");
  if (x.numel() == 0) return;
  DeviceGuard guard(be.device_index());
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    constexpr int P = kPack<T>;
    const std::int64_t d = x.size(3);
    const bool vec = d % P == 0 && x.stride(0) % P == 0 && x.stride(1) % P == 0 &&
                     x.stride(2) % P == 0 && aligned16(x.raw_data()) && aligned16(out.raw_data());
    const int width = vec ? P : 2;
    const std::int64_t units = x.numel() / width;
    const unsigned grid = grid_for(units, kThreads, be.multiprocessor_count());
    if (units <= INT32_MAX) {
      using I = std::uint32_t;
      rope_kernel<T, I><<<grid, kThreads, 0, be.stream()>>>(
          out.data<T>(), x.data<const T>(), angles.data<const float>(), static_cast<I>(units),
          static_cast<I>(x.size(1)), static_cast<I>(x.size(2)), static_cast<I>(d / width), width,
          static_cast<int>(half), x.stride(0), x.stride(1), x.stride(2));
    } else {
      rope_kernel<T, std::int64_t><<<grid, kThreads, 0, be.stream()>>>(
          out.data<T>(), x.data<const T>(), angles.data<const float>(), units, x.size(1),
          x.size(2), d / width, width, static_cast<int>(half), x.stride(0), x.stride(1),
          x.stride(2));
    }
    DITSERVE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ditserve::cuda
