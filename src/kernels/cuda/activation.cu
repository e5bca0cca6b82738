// Pointwise activations (GELU exact and tanh, SiLU) and the row softmax.

#include <cstdint>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

constexpr int kThreads = 256;

// Same formulas as the CPU backend, with the accurate (non-intrinsic) math functions.
template <Activation kAct> __device__ __forceinline__ float activate(float v) {
  if constexpr (kAct == Activation::gelu_tanh) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    const float inner = kSqrt2OverPi * (v + 0.044715f * v * v * v);
    return 0.5f * v * (1.0f + tanhf(inner));
  } else if constexpr (kAct == Activation::gelu_exact) {
    constexpr float kInvSqrt2 = 0.7071067811865476f;
    return 0.5f * v * (1.0f + erff(v * kInvSqrt2));
  } else {
    return v / (1.0f + expf(-v));
  }
}

template <typename T, Activation kAct>
__global__ void activation_kernel(T* out, const T* x, std::int64_t n, bool vec) {
  constexpr int P = kPack<T>;
  const std::int64_t tid = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  std::int64_t first_scalar = 0;
  if (vec) {
    const std::int64_t packs = n / P;
    for (std::int64_t p = tid; p < packs; p += step) {
      const Pack<T> in = reinterpret_cast<const Pack<T>*>(x)[p];
      Pack<T> o;
#pragma unroll
      for (int k = 0; k < P; ++k) o.v[k] = from_f32<T>(activate<kAct>(to_f32(in.v[k])));
      reinterpret_cast<Pack<T>*>(out)[p] = o;
    }
    first_scalar = packs * P;
  }
  for (std::int64_t i = first_scalar + tid; i < n; i += step) {
    out[i] = from_f32<T>(activate<kAct>(to_f32(x[i])));
  }
}

template <typename T, bool kWarp>
__global__ void softmax_kernel(T* out, const T* x, std::int64_t rows, int c, bool vec,
                               bool cached) {
  extern __shared__ float row_cache[];
  __shared__ float scratch[32];
  const RowSlot slot = row_slot<kWarp>(cached ? row_cache : nullptr, c);
  for (std::int64_t r = slot.first; r < rows; r += slot.step) {
    const T* xr = x + r * c;
    float m = -INFINITY;
    row_load(slot, xr, c, vec, [&](int, float v) { m = fmaxf(m, v); });
    m = row_max<kWarp>(m, scratch);
    float s = 0.0f;
    row_visit(slot, xr, c, vec, [&](int, float v) { s += expf(v - m); });
    s = row_sum<kWarp>(s, scratch);
    const float inv = 1.0f / s;
    row_store(slot, out + r * c, xr, c, vec, [&](int, float v) { return expf(v - m) * inv; });
  }
}

template <typename T, Activation kAct>
void launch_activation(CudaBackend& be, const Tensor& out, const Tensor& x) {
  const std::int64_t n = x.numel();
  const bool vec = aligned16(out.raw_data()) && aligned16(x.raw_data());
  const unsigned grid = grid_for(vec ? n / kPack<T> + 1 : n, kThreads, be.multiprocessor_count());
  activation_kernel<T, kAct><<<grid, kThreads, 0, be.stream()>>>(out.data<T>(), x.data<const T>(),
                                                                 n, vec);
  DITSERVE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void activation(CudaBackend& be, Activation act, const Tensor& out, const Tensor& x) {
  DITSERVE_CHECK(out.is_contiguous() && x.is_contiguous() && out.shape() == x.shape() &&
                     out.dtype() == x.dtype(),
                 "activation: expected contiguous out and x of one shape and dtype, got ",
                 out.describe(), " and ", x.describe());
  if (x.numel() == 0) return;
  DeviceGuard guard(be.device_index());
  if (act == Activation::none) {
    DITSERVE_CUDA_CHECK(cudaMemcpyAsync(out.raw_data(), x.raw_data(), x.nbytes(),
                                        cudaMemcpyDeviceToDevice, be.stream()));
    return;
  }
  dispatch_float("activation", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    switch (act) {
      case Activation::gelu_tanh: launch_activation<T, Activation::gelu_tanh>(be, out, x); return;
      case Activation::gelu_exact: launch_activation<T, Activation::gelu_exact>(be, out, x); return;
      case Activation::silu: launch_activation<T, Activation::silu>(be, out, x); return;
      case Activation::none: break;
    }
    throw InvalidArgument("activation: unknown activation");
  });
}

void softmax(CudaBackend& be, const Tensor& out, const Tensor& x) {
  DITSERVE_CHECK(out.is_contiguous() && x.is_contiguous() && out.shape() == x.shape() &&
                     out.dtype() == x.dtype() && x.dim() >= 1,
                 "softmax: expected contiguous out and x of one shape and dtype, got ",
                 out.describe(), " and ", x.describe());
  const std::int64_t c = x.size(-1);
  if (x.numel() == 0) return;
  DITSERVE_CHECK(c <= INT32_MAX, "softmax: last dim of ", x.describe(), " is too long");
  const std::int64_t rows = x.numel() / c;
  DeviceGuard guard(be.device_index());
  dispatch_float("softmax", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const RowLaunch l = row_launch<T>(rows, c, {out.raw_data(), x.raw_data()});
    launch_rows(be.stream(), l, softmax_kernel<T, true>, softmax_kernel<T, false>,
                out.data<T>(), x.data<const T>(), rows, static_cast<int>(c), l.vec, l.cache > 0);
    DITSERVE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ditserve::cuda
