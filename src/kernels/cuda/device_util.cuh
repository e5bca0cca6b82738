#pragma once
// Pieces shared by the hand-written kernels (CUDA translation units only): f32 load/store
// of the storage types, 16-byte packs for vectorised access, a strided indexer passed by
// value, warp/block reductions, row-kernel helpers (a warp or a block per row), and host
// helpers for launch shapes and dtype dispatch.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "tensor/error.h"
#include "tensor/tensor.h"

namespace ditserve::cuda {

// ---- element conversion: math in f32, round-to-nearest-even on store ----

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ __half from_f32<__half>(float v) {
  return __float2half_rn(v);
}

// Floating value of a tensor whose dtype is only known at run time (f32/bf16/f16).
// `dtype` is uniform across a launch, so the switch does not diverge.
__device__ __forceinline__ float load_any_float(const void* p, int dtype, std::int64_t i) {
  switch (dtype) {
    case static_cast<int>(DType::bf16): return to_f32(static_cast<const __nv_bfloat16*>(p)[i]);
    case static_cast<int>(DType::f16): return to_f32(static_cast<const __half*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

// ---- 16-byte packs: kPack<T> elements loaded or stored by one instruction ----

template <typename T> inline constexpr int kPack = 16 / static_cast<int>(sizeof(T));

template <typename T> struct alignas(16) Pack {
  T v[kPack<T>];
};

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Whether q, k or v [B, S, H, D] can be read in 16-byte packs of `pack` elements: an
// aligned base, every stride a whole number of packs, unit stride on D (the attention
// kernels that stage heads with cp.async).
inline bool packed_rows(const Tensor& t, int pack) {
  return aligned16(t.raw_data()) && t.stride(0) % pack == 0 && t.stride(1) % pack == 0 &&
         t.stride(2) % pack == 0 && t.stride(3) == 1;
}

// ---- strided addressing of up to kMaxDims dims, passed to kernels by value ----

inline constexpr int kMaxDims = 8;

// Element offsets of N views of one shape for a row-major linear index. Dims are stored
// innermost first, after merging dims that are contiguous in every view and dropping
// size-1 dims, so a dense view costs one division per element or none.
template <int N> struct StridedIndexer {
  int ndim = 0;
  std::int64_t size[kMaxDims] = {};
  std::int64_t stride[N][kMaxDims] = {};

  // I is uint32_t when the element count fits in 31 bits (cheap division), else int64_t.
  template <typename I>
  __device__ __forceinline__ void offsets(I linear, std::int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d >= ndim) break;
      const I sz = static_cast<I>(size[d]);
      const I q = linear / sz;
      const std::int64_t r = static_cast<std::int64_t>(linear - q * sz);
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += r * stride[k][d];
      linear = q;
    }
  }
};

// Builds the indexer of `views` (all of `shape`); throws if more than kMaxDims dims
// remain after merging. `op` names the caller in the error.
template <int N>
StridedIndexer<N> make_indexer(std::string_view op, const Shape& shape,
                               const std::array<const Shape*, N>& strides) {
  // Kept dims, innermost first; a dim merges into the group inside it when every view
  // steps over that whole group with its own stride.
  std::vector<std::int64_t> sizes;
  std::vector<std::array<std::int64_t, N>> st;
  for (std::size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;
    std::array<std::int64_t, N> s{};
    for (int k = 0; k < N; ++k) s[k] = (*strides[k])[i];
    if (!sizes.empty()) {
      bool mergeable = true;
      for (int k = 0; k < N; ++k) mergeable = mergeable && s[k] == st.back()[k] * sizes.back();
      if (mergeable) {
        sizes.back() *= shape[i];
        continue;
      }
    }
    sizes.push_back(shape[i]);
    st.push_back(s);
  }
  DITSERVE_CHECK(sizes.size() <= static_cast<std::size_t>(kMaxDims), op,
                 ": the CUDA kernel takes at most ", kMaxDims, " dims after merging, got ",
                 shape_str(shape));
  StridedIndexer<N> ix;
  ix.ndim = static_cast<int>(sizes.size());
  for (std::size_t d = 0; d < sizes.size(); ++d) {
    ix.size[d] = sizes[d];
    for (int k = 0; k < N; ++k) ix.stride[k][d] = st[d][k];
  }
  return ix;
}

// True when every view of the indexer is dense in row-major order.
template <int N> bool all_dense(const StridedIndexer<N>& ix) {
  if (ix.ndim == 0) return true;
  if (ix.ndim > 1) return false;
  for (int k = 0; k < N; ++k) {
    if (ix.stride[k][0] != 1) return false;
  }
  return true;
}

// The indexer of `pack`-element units along the innermost dim, when every view allows
// one 16-byte access per unit: the innermost size is a multiple of `pack`, and each view
// has unit inner stride with units on 16-byte boundaries (base aligned, outer strides
// multiples of `pack`), or, where broadcast[k], inner stride 0 (one element per unit).
// Offsets stay in elements. Returns false when some view does not allow it.
template <int N>
bool make_pack_indexer(const StridedIndexer<N>& ix, int pack,
                       const std::array<const void*, N>& base,
                       const std::array<bool, N>& broadcast, StridedIndexer<N>& packed) {
  if (ix.ndim == 0 || ix.size[0] % pack != 0) return false;
  for (int k = 0; k < N; ++k) {
    if (ix.stride[k][0] == 0 && broadcast[k]) continue;
    if (ix.stride[k][0] != 1 || !aligned16(base[k])) return false;
    for (int d = 1; d < ix.ndim; ++d) {
      if (ix.stride[k][d] % pack != 0) return false;
    }
  }
  packed = ix;
  packed.size[0] /= pack;
  for (int k = 0; k < N; ++k) packed.stride[k][0] *= pack;
  return true;
}

// ---- reductions (blockDim.x must be a multiple of 32) ----

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum (or max) over the block, returned to every thread. `scratch` is 32 floats of
// shared memory; the leading barrier makes back-to-back calls safe.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = static_cast<int>(blockDim.x >> 5);
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const float identity = kMax ? -INFINITY : 0.0f;
  const float t = lane < warps ? scratch[lane] : identity;
  return kMax ? warp_max(t) : warp_sum(t);
}

__device__ __forceinline__ float block_sum(float v, float* scratch) {
  return block_reduce<false>(v, scratch);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  return block_reduce<true>(v, scratch);
}

// ---- host helpers ----

inline constexpr std::int64_t kMaxGrid = std::int64_t{1} << 30;

// Blocks for a grid-stride loop over `work` items with `threads` threads each: enough to
// fill the GPU several times over, never more than the work needs.
inline unsigned grid_for(std::int64_t work, int threads, int sm_count) {
  const std::int64_t needed = (work + threads - 1) / threads;
  const std::int64_t cap = static_cast<std::int64_t>(std::max(sm_count, 1)) * 32;
  return static_cast<unsigned>(std::max<std::int64_t>(1, std::min(needed, cap)));
}

inline int round_up(int v, int multiple) { return (v + multiple - 1) / multiple * multiple; }

// Threads for a one-block-per-row kernel that visits `items` (elements or packs) per row.
inline int row_threads(std::int64_t items, int min_threads, int max_threads) {
  const std::int64_t want = std::min<std::int64_t>((items + 1) / 2, max_threads);  // ~2 each
  return std::clamp(round_up(static_cast<int>(want), 32), min_threads, max_threads);
}

// Calls fn(T{}) with T the storage type of a floating dtype; throws naming `op` otherwise.
template <typename Fn> void dispatch_float(std::string_view op, DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: fn(float{}); return;
    case DType::bf16: fn(__nv_bfloat16{}); return;
    case DType::f16: fn(__half{}); return;
    default: break;
  }
  throw InvalidArgument(std::string(op) + ": the CUDA kernel takes f32, bf16 or f16, got " +
                        std::string(dtype_name(dtype)));
}

template <typename T> const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<const T>() : nullptr;
}

// ---- row kernels over rows of c elements: a warp per row (short rows) or a block ----
// A RowSlot says which threads share a row. Every pass of a thread visits the same
// elements (packs of kPack<T> when `vec`), so a thread re-reads from `cache` (shared
// memory, f32) only what it wrote itself: no barrier is needed between passes. The cache
// is laid out pack-lane-major so that a warp's accesses hit distinct banks. A null cache
// makes later passes reload from global memory.

struct RowSlot {
  int tid;             // this thread's index among the row's threads
  int threads;         // threads per row: 32, or blockDim.x
  float* cache;        // this row's cache, or null
  std::int64_t first;  // first row of this warp or block
  std::int64_t step;   // row stride of the grid-stride loop
};

template <bool kWarp> __device__ __forceinline__ RowSlot row_slot(float* cache, int c) {
  if constexpr (kWarp) {
    const int warp = static_cast<int>(threadIdx.x >> 5);
    const int per_block = static_cast<int>(blockDim.x >> 5);
    return {static_cast<int>(threadIdx.x & 31), 32,
            cache != nullptr ? cache + static_cast<std::int64_t>(warp) * c : nullptr,
            static_cast<std::int64_t>(blockIdx.x) * per_block + warp,
            static_cast<std::int64_t>(gridDim.x) * per_block};
  } else {
    return {static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x), cache,
            static_cast<std::int64_t>(blockIdx.x), static_cast<std::int64_t>(gridDim.x)};
  }
}

// Sum or max over the threads of a row; `scratch` (32 floats of shared memory) serves
// the block case.
template <bool kWarp> __device__ __forceinline__ float row_sum(float v, float* scratch) {
  if constexpr (kWarp) {
    return warp_sum(v);
  } else {
    return block_sum(v, scratch);
  }
}
template <bool kWarp> __device__ __forceinline__ float row_max(float v, float* scratch) {
  if constexpr (kWarp) {
    return warp_max(v);
  } else {
    return block_max(v, scratch);
  }
}

template <typename T> __device__ __forceinline__ int cache_index(int j, int c, bool vec) {
  constexpr int P = kPack<T>;
  return vec ? (j % P) * (c / P) + j / P : j;
}

// f(j, x[j]) for this thread's elements; stores them in the slot's cache when it has one.
template <typename T, typename F>
__device__ __forceinline__ void row_load(const RowSlot& slot, const T* row, int c, bool vec,
                                         F&& f) {
  constexpr int P = kPack<T>;
  float* cache = slot.cache;
  if (vec) {
    for (int j = slot.tid * P; j < c; j += slot.threads * P) {
      const Pack<T> p = *reinterpret_cast<const Pack<T>*>(row + j);
#pragma unroll
      for (int k = 0; k < P; ++k) {
        const float v = to_f32(p.v[k]);
        if (cache != nullptr) cache[cache_index<T>(j + k, c, true)] = v;
        f(j + k, v);
      }
    }
  } else {
    for (int j = slot.tid; j < c; j += slot.threads) {
      const float v = to_f32(row[j]);
      if (cache != nullptr) cache[j] = v;
      f(j, v);
    }
  }
}

// f(j, x[j]) again for the same elements, from the cache when there is one.
template <typename T, typename F>
__device__ __forceinline__ void row_visit(const RowSlot& slot, const T* row, int c, bool vec,
                                          F&& f) {
  const float* cache = slot.cache;
  if (cache == nullptr) {
    row_load(slot, row, c, vec, f);
    return;
  }
  constexpr int P = kPack<T>;
  const int width = vec ? P : 1;
  for (int j = slot.tid * width; j < c; j += slot.threads * width) {
    if (vec) {
#pragma unroll
      for (int k = 0; k < P; ++k) f(j + k, cache[cache_index<T>(j + k, c, true)]);
    } else {
      f(j, cache[j]);
    }
  }
}

// out[j] = f(j, x[j]) for the same elements.
template <typename T, typename F>
__device__ __forceinline__ void row_store(const RowSlot& slot, T* out, const T* row, int c,
                                          bool vec, F&& f) {
  constexpr int P = kPack<T>;
  const float* cache = slot.cache;
  if (vec) {
    for (int j = slot.tid * P; j < c; j += slot.threads * P) {
      float v[P];
      if (cache != nullptr) {
#pragma unroll
        for (int k = 0; k < P; ++k) v[k] = cache[cache_index<T>(j + k, c, true)];
      } else {
        const Pack<T> p = *reinterpret_cast<const Pack<T>*>(row + j);
#pragma unroll
        for (int k = 0; k < P; ++k) v[k] = to_f32(p.v[k]);
      }
      Pack<T> o;
#pragma unroll
      for (int k = 0; k < P; ++k) o.v[k] = from_f32<T>(f(j + k, v[k]));
      *reinterpret_cast<Pack<T>*>(out + j) = o;
    }
  } else {
    for (int j = slot.tid; j < c; j += slot.threads) {
      const float v = cache != nullptr ? cache[j] : to_f32(row[j]);
      out[j] = from_f32<T>(f(j, v));
    }
  }
}

// Launch shape of a row kernel over `rows` rows of c elements of T.
struct RowLaunch {
  bool warp;           // a warp per row (kWarp = true), else a block per row
  bool vec;            // rows are read and written in 16-byte packs
  int threads;         // per block, a multiple of 32
  unsigned grid;       // blocks
  std::size_t cache;   // dynamic shared memory bytes (0: no cache, reload)
};

// Rows must all share the alignment of `ptrs` (true when c * sizeof(T) % 16 == 0).
template <typename T>
RowLaunch row_launch(std::int64_t rows, std::int64_t c, std::initializer_list<const void*> ptrs) {
  constexpr int P = kPack<T>;
  constexpr std::int64_t kMaxCacheBytes = 48 * 1024;  // without opting in to more
  constexpr std::int64_t kWarpRowMax = 2048;          // longer rows get a block each
  constexpr int kWarpsPerBlock = 4;
  bool vec = c % P == 0;
  for (const void* p : ptrs) vec = vec && (p == nullptr || aligned16(p));
  RowLaunch l{};
  l.vec = vec;
  l.warp = c <= kWarpRowMax;
  std::int64_t blocks = rows;
  std::int64_t cache_bytes = c * static_cast<std::int64_t>(sizeof(float));
  if (l.warp) {
    l.threads = 32 * kWarpsPerBlock;
    blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
    cache_bytes *= kWarpsPerBlock;
  } else {
    l.threads = row_threads(vec ? c / P : c, 64, 512);
  }
  l.grid = static_cast<unsigned>(std::min(blocks, kMaxGrid));
  l.cache = cache_bytes <= kMaxCacheBytes ? static_cast<std::size_t>(cache_bytes) : 0;
  return l;
}

// Launches the warp-per-row or the block-per-row instance of a row kernel (two
// instances of one template, so they share a signature).
template <typename Kernel, typename... Args>
void launch_rows(cudaStream_t stream, const RowLaunch& l, Kernel warp_kernel,
                 Kernel block_kernel, Args... args) {
  const Kernel kernel = l.warp ? warp_kernel : block_kernel;
  kernel<<<l.grid, l.threads, l.cache, stream>>>(args...);
}

}  // namespace ditserve::cuda
