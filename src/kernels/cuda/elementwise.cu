// Element-wise arithmetic on operands expanded to the output's shape (strides may be 0).
// Dense operands take a vectorised path; operands dense (or broadcast) along the innermost
// dim are addressed once per 16-byte pack; others go through the strided indexer per element.

#include <cstdint>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T, int N> struct Inputs {
  const T* p[N];
};

// a op b; add is add_scaled with alpha 1 (x + 1*y is exact).
struct BinaryFn {
  bool multiply;
  float alpha;
  __device__ __forceinline__ float operator()(const float (&v)[2]) const {
    return multiply ? v[0] * v[1] : v[0] + alpha * v[1];
  }
};

// x + gate * y with operands (x, gate, y).
struct GatedFn {
  __device__ __forceinline__ float operator()(const float (&v)[3]) const {
    return v[0] + v[1] * v[2];
  }
};

// All operands dense: 16-byte packs when every pointer is aligned, then a scalar tail.
template <typename T, int N, typename Fn>
__global__ void dense_kernel(T* out, Inputs<T, N> in, std::int64_t n, Fn fn, bool vec) {
  constexpr int P = kPack<T>;
  const std::int64_t tid = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  std::int64_t first_scalar = 0;
  if (vec) {
    const std::int64_t packs = n / P;
    for (std::int64_t p = tid; p < packs; p += step) {
      Pack<T> src[N];
#pragma unroll
      for (int k = 0; k < N; ++k) src[k] = reinterpret_cast<const Pack<T>*>(in.p[k])[p];
      Pack<T> dst;
#pragma unroll
      for (int e = 0; e < P; ++e) {
        float v[N];
#pragma unroll
        for (int k = 0; k < N; ++k) v[k] = to_f32(src[k].v[e]);
        dst.v[e] = from_f32<T>(fn(v));
      }
      reinterpret_cast<Pack<T>*>(out)[p] = dst;
    }
    first_scalar = packs * P;
  }
  for (std::int64_t i = first_scalar + tid; i < n; i += step) {
    float v[N];
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = to_f32(in.p[k][i]);
    out[i] = from_f32<T>(fn(v));
  }
}

// Broadcast or strided operands; out is contiguous, so its offset is the linear index.
template <typename T, typename I, int N, typename Fn>
__global__ void strided_kernel(T* out, Inputs<T, N> in, StridedIndexer<N> ix, I n, Fn fn) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    std::int64_t off[N];
    ix.offsets(i, off);
    float v[N];
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = to_f32(in.p[k][off[k]]);
    out[i] = from_f32<T>(fn(v));
  }
}

// Operands dense along the innermost dim (or broadcast there): one index computation
// per 16-byte pack of the output. `ix` counts packs; a broadcast operand (inner stride 0)
// contributes one element to the whole pack.
template <typename T, typename I, int N, typename Fn>
__global__ void packed_kernel(T* out, Inputs<T, N> in, StridedIndexer<N> ix, I units, Fn fn) {
  constexpr int P = kPack<T>;
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I u = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; u < units; u += step) {
    std::int64_t off[N];
    ix.offsets(u, off);
    float v[N][P];
#pragma unroll
    for (int k = 0; k < N; ++k) {
      if (ix.stride[k][0] != 0) {
        const Pack<T> p = *reinterpret_cast<const Pack<T>*>(in.p[k] + off[k]);
#pragma unroll
        for (int e = 0; e < P; ++e) v[k][e] = to_f32(p.v[e]);
      } else {
        const float b = to_f32(in.p[k][off[k]]);
#pragma unroll
        for (int e = 0; e < P; ++e) v[k][e] = b;
      }
    }
    Pack<T> o;
#pragma unroll
    for (int e = 0; e < P; ++e) {
      float args[N];
#pragma unroll
      for (int k = 0; k < N; ++k) args[k] = v[k][e];
      o.v[e] = from_f32<T>(fn(args));
    }
    reinterpret_cast<Pack<T>*>(out)[u] = o;
  }
}

template <int N, typename Fn>
void launch(CudaBackend& be, std::string_view op, const Tensor& out,
            const std::array<const Tensor*, N>& operands, Fn fn) {
  for (const Tensor* t : operands) {
    DITSERVE_CHECK(t->dtype() == out.dtype() && t->shape() == out.shape(), op,
                   ": operand ", t->describe(), " is not expanded to out ", out.describe());
  }
  DITSERVE_CHECK(out.is_contiguous(), op, ": out must be contiguous, got ", out.describe());
  const std::int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(be.device_index());
  std::array<const Shape*, N> strides{};
  for (int k = 0; k < N; ++k) strides[k] = &operands[k]->strides();
  const StridedIndexer<N> ix = make_indexer<N>(op, out.shape(), strides);
  dispatch_float(op, out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Inputs<T, N> in{};
    bool aligned = aligned16(out.raw_data());
    for (int k = 0; k < N; ++k) {
      in.p[k] = operands[k]->template data<const T>();
      aligned = aligned && aligned16(in.p[k]);
    }
    T* o = out.data<T>();
    std::array<const void*, N> bases{};
    std::array<bool, N> broadcast{};
    for (int k = 0; k < N; ++k) {
      bases[k] = in.p[k];
      broadcast[k] = true;
    }
    StridedIndexer<N> packed;
    if (all_dense(ix)) {
      const unsigned grid = grid_for(aligned ? n / kPack<T> + 1 : n, kThreads,
                                     be.multiprocessor_count());
      dense_kernel<T, N, Fn><<<grid, kThreads, 0, be.stream()>>>(o, in, n, fn, aligned);
    } else if (aligned16(o) && make_pack_indexer<N>(ix, kPack<T>, bases, broadcast, packed)) {
      const std::int64_t units = n / kPack<T>;
      const unsigned grid = grid_for(units, kThreads, be.multiprocessor_count());
      if (units <= INT32_MAX) {
        packed_kernel<T, std::uint32_t, N, Fn><<<grid, kThreads, 0, be.stream()>>>(
            o, in, packed, static_cast<std::uint32_t>(units), fn);
      } else {
        packed_kernel<T, std::int64_t, N, Fn><<<grid, kThreads, 0, be.stream()>>>(o, in, packed,
                                                                                 units, fn);
      }
    } else if (n <= INT32_MAX) {
      const unsigned grid = grid_for(n, kThreads, be.multiprocessor_count());
      strided_kernel<T, std::uint32_t, N, Fn><<<grid, kThreads, 0, be.stream()>>>(
          o, in, ix, static_cast<std::uint32_t>(n), fn);
    } else {
      const unsigned grid = grid_for(n, kThreads, be.multiprocessor_count());
      strided_kernel<T, std::int64_t, N, Fn><<<grid, kThreads, 0, be.stream()>>>(o, in, ix, n,
                                                                                 fn);
    }
    DITSERVE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void binary(CudaBackend& be, BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b,
            float alpha) {
  const BinaryFn fn{op == BinaryOp::mul, op == BinaryOp::add ? 1.0f : alpha};
  launch<2>(be, "binary", out, {&a, &b}, fn);
}

void gated_residual(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& gate,
                    const Tensor& y) {
  launch<3>(be, "gated_residual", out, {&x, &gate, &y}, GatedFn{});
}

}  // namespace ditserve::cuda
