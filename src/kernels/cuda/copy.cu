// Strided copies, dtype casts and zero fills.

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

constexpr int kThreads = 256;

// Moves elements as unsigned words of the element's size: a copy needs no arithmetic.
template <typename W, typename I>
__global__ void copy_kernel(W* dst, const W* src, StridedIndexer<2> ix, I n) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    std::int64_t off[2];
    ix.offsets(i, off);
    dst[off[0]] = src[off[1]];
  }
}

// Both views dense along the innermost dim (src may broadcast there): 16-byte packs.
template <typename W, typename I>
__global__ void copy_packed_kernel(W* dst, const W* src, StridedIndexer<2> ix, I units) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I u = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; u < units; u += step) {
    std::int64_t off[2];
    ix.offsets(u, off);
    Pack<W> p;
    if (ix.stride[1][0] != 0) {
      p = *reinterpret_cast<const Pack<W>*>(src + off[1]);
    } else {
      const W v = src[off[1]];
#pragma unroll
      for (int e = 0; e < kPack<W>; ++e) p.v[e] = v;
    }
    *reinterpret_cast<Pack<W>*>(dst + off[0]) = p;
  }
}

template <typename W>
void launch_copy(CudaBackend& be, const Tensor& dst, const Tensor& src,
                 const StridedIndexer<2>& ix) {
  const std::int64_t n = dst.numel();
  auto* d = static_cast<W*>(dst.raw_data());
  const auto* s = static_cast<const W*>(src.raw_data());
  StridedIndexer<2> packed;
  if (make_pack_indexer<2>(ix, kPack<W>, {d, s}, {false, true}, packed)) {
    const std::int64_t units = n / kPack<W>;
    const unsigned grid = grid_for(units, kThreads, be.multiprocessor_count());
    if (units <= INT32_MAX) {
      copy_packed_kernel<W, std::uint32_t><<<grid, kThreads, 0, be.stream()>>>(
          d, s, packed, static_cast<std::uint32_t>(units));
    } else {
      copy_packed_kernel<W, std::int64_t><<<grid, kThreads, 0, be.stream()>>>(d, s, packed,
                                                                              units);
    }
    DITSERVE_CUDA_CHECK_LAUNCH();
    return;
  }
  const unsigned grid = grid_for(n, kThreads, be.multiprocessor_count());
  if (n <= INT32_MAX) {
    copy_kernel<W, std::uint32_t><<<grid, kThreads, 0, be.stream()>>>(
        d, s, ix, static_cast<std::uint32_t>(n));
  } else {
    copy_kernel<W, std::int64_t><<<grid, kThreads, 0, be.stream()>>>(d, s, ix, n);
  }
  DITSERVE_CUDA_CHECK_LAUNCH();
}

// ---- casts: mirror the CPU backend (floats through f32, integers through int64) ----

template <typename T>
inline constexpr bool kIsFloat = std::is_same_v<T, float> || std::is_same_v<T, __nv_bfloat16> ||
                                 std::is_same_v<T, __half>;

template <typename S, typename D> __device__ __forceinline__ D convert(S v) {
  if constexpr (kIsFloat<S>) {
    const float f = to_f32(v);
    if constexpr (kIsFloat<D>) {
      return from_f32<D>(f);
    } else {
      return static_cast<D>(f);
    }
  } else if constexpr (kIsFloat<D>) {
    return from_f32<D>(static_cast<float>(v));
  } else {
    return static_cast<D>(static_cast<std::int64_t>(v));
  }
}

template <typename S, typename D>
__global__ void cast_kernel(D* out, const S* in, std::int64_t n) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += step) {
    out[i] = convert<S, D>(in[i]);
  }
}

// Calls fn(T{}) with the storage type of any dtype.
template <typename Fn> void dispatch_any(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: fn(float{}); return;
    case DType::bf16: fn(__nv_bfloat16{}); return;
    case DType::f16: fn(__half{}); return;
    case DType::i32: fn(std::int32_t{}); return;
    case DType::i64: fn(std::int64_t{}); return;
    case DType::u8: fn(std::uint8_t{}); return;
  }
  throw InvalidArgument("cast: unknown dtype");
}

}  // namespace

void copy_strided(CudaBackend& be, const Tensor& dst, const Tensor& src) {
  DITSERVE_CHECK(dst.dtype() == src.dtype(), "copy_strided: dtypes differ (", dst.describe(),
                 " vs ", src.describe(), ")");
  DITSERVE_CHECK(dst.shape() == src.shape(), "copy_strided: shapes differ (", dst.describe(),
                 " vs ", src.describe(), ")");
  if (dst.numel() == 0) return;
  DeviceGuard guard(be.device_index());
  const StridedIndexer<2> ix =
      make_indexer<2>("copy_strided", dst.shape(), {&dst.strides(), &src.strides()});
  if (all_dense(ix)) {
    DITSERVE_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(),
                                        cudaMemcpyDeviceToDevice, be.stream()));
    return;
  }
  switch (dtype_size(dst.dtype())) {
    case 1: launch_copy<std::uint8_t>(be, dst, src, ix); return;
    case 2: launch_copy<std::uint16_t>(be, dst, src, ix); return;
    case 4: launch_copy<std::uint32_t>(be, dst, src, ix); return;
    case 8: launch_copy<std::uint64_t>(be, dst, src, ix); return;
    default: break;
  }
  throw Error("copy_strided: unsupported element size of " + dst.describe());
}

void cast(CudaBackend& be, const Tensor& out, const Tensor& src) {
  DITSERVE_CHECK(out.is_contiguous() && src.is_contiguous() && out.numel() == src.numel(),
                 "cast: expected contiguous tensors of equal size, got ", out.describe(),
                 " and ", src.describe());
  const std::int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(be.device_index());
  if (out.dtype() == src.dtype()) {
    DITSERVE_CUDA_CHECK(cudaMemcpyAsync(out.raw_data(), src.raw_data(), out.nbytes(),
                                        cudaMemcpyDeviceToDevice, be.stream()));
    return;
  }
  const unsigned grid = grid_for(n, kThreads, be.multiprocessor_count());
  dispatch_any(src.dtype(), [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_any(out.dtype(), [&](auto d_tag) {
      using D = decltype(d_tag);
      cast_kernel<S, D><<<grid, kThreads, 0, be.stream()>>>(out.data<D>(), src.data<const S>(),
                                                            n);
      DITSERVE_CUDA_CHECK_LAUNCH();
    });
  });
}

void fill_zero(CudaBackend& be, const Tensor& out) {
  DITSERVE_CHECK(out.is_contiguous(), "fill_zero: out must be contiguous, got ",
                 out.describe());
  if (out.numel() == 0) return;
  DeviceGuard guard(be.device_index());
  // All-zero bytes are zero in every dtype.
  DITSERVE_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.nbytes(), be.stream()));
}

}  // namespace ditserve::cuda
