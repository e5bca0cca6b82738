// The attention kernel of a DiT block where generic ones waste most of the time
// (STDiT3's temporal blocks: <= 30 frames at thousands of positions), and the switch
// shared with the fused q/k RMSNorm + RoPE (qk_norm_rope.cu).
//
// attention_short is memory-bound by design: for 15 frames a (batch, head) pair does
// ~32 k multiply-adds per 8.6 KB of q, k, v and output, so the kernel has to move bytes at
// the HBM rate and keep the arithmetic out of the way. cuDNN's flash kernel pads the
// sequence to its 64- or 128-row tiles and runs mostly empty.
//
// Layout of the work. A block of 4 warps takes G consecutive heads of one batch index
// (G = 4 when Sq <= 16, else 2 with two warps per head, one per 16-query tile).
// 1. Staging: all threads copy q, k and v of those heads into shared memory with 16-byte
//    cp.async, consecutive threads on consecutive packs of a (row, head) segment: where
//    the head stride is D (q/k/v views of a fused projection, or H = positions x heads)
//    the G heads of a row are one contiguous run of G * D elements. Rows are padded with
//    zeros to 16 (or 32) queries and keys; rows are 72 elements apart in shared memory
//    (144 B: the 8 rows an ldmatrix reads fall in distinct banks, for D = 64 and 72).
// 2. Compute: a warp owns one (head, 16-query tile) and uses the tensor cores
//    (mma.sync m16n8k16, plus m16n8k8 for the last 8 columns of D = 72): S = Q K^T in f32,
//    a masked, exact softmax in registers (all <= 32 keys at once: no online rescaling),
//    O = P V with P split into a 16-bit high and low part (two MMAs), so P keeps ~f32
//    precision instead of being rounded to bf16. The normalised output tile is written
//    back over the warp's own q rows.
// 3. Store: all threads write the G heads' output rows with coalesced 16-byte stores.
// q, k, v and out each cross DRAM once; several blocks per SM overlap one block's
// staging with another's compute.
//
// The previous version (a warp per (batch, head), a lane per query with q and o rows of
// 72 floats in registers) idled 17 of 32 lanes at 15 frames, read q with 16-byte accesses
// a row stride apart, and measured ~0.7 TB/s on an H100 (1.5 ms per 720p x 51-frame call).

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/mma_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

constexpr int kWarps = 4;  // per block
constexpr int kTile = 16;  // queries or keys per MMA tile
// Shared-memory row stride in elements, for D = 64 and 72: 144 bytes, so the eight
// 16-byte rows of an ldmatrix phase start 4 banks apart (conflict-free).
constexpr int kRowStride = 72;
constexpr float kLog2e = 1.4426950408889634f;

struct ShortStrides {
  std::int64_t q[3], k[3], v[3];  // batch, sequence, head (elements; the head dim is unit)
};

// Copies `rows` rows of G head vectors (D elements each) from global memory into
// dst[G][padded_rows][kRowStride], and zeroes rows rows..padded_rows-1, for the first
// `heads_here` heads. Consecutive threads take consecutive 16-byte packs of one row's
// heads, so a row's run of G heads is read coalesced when the head stride is D.
template <typename T, int D, int G>
__device__ __forceinline__ void stage(T* dst, int padded_rows, const T* src,
                                      std::int64_t row_stride, std::int64_t head_stride,
                                      int rows, int heads_here) {
  constexpr int kPacks = D / kPack<T>;
  const int count = padded_rows * G * kPacks;
  for (int i = static_cast<int>(threadIdx.x); i < count; i += static_cast<int>(blockDim.x)) {
    const int p = i % kPacks, row_head = i / kPacks;
    const int g = row_head % G, r = row_head / G;
    if (g >= heads_here) continue;
    T* d = dst + (g * padded_rows + r) * kRowStride + p * kPack<T>;
    if (r < rows) {
      cp_async_16(d, src + r * row_stride + g * head_stride + p * kPack<T>);
    } else {
      *reinterpret_cast<uint4*>(d) = make_uint4(0, 0, 0, 0);
    }
  }
}

// One block: heads h0 .. h0 + G - 1 (clipped to `heads`) of batch index b, where
// blockIdx.x = b * groups + h0 / G. MT query tiles (Sq <= 16 MT), KT key tiles (Sk <= 16 KT).
template <typename T, int D, int MT, int KT>
__global__ void __launch_bounds__(kWarps * 32)
    attention_short_kernel(T* __restrict__ out, const T* __restrict__ q,
                           const T* __restrict__ k, const T* __restrict__ v, int heads,
                           int groups, int sq, int sk, float scale_log2, ShortStrides st) {
  static_assert(D % 16 == 0 || D % 16 == 8, "D must be a multiple of 8");
  static_assert(D <= kRowStride, "a head vector must fit a shared-memory row");
  constexpr int G = kWarps / MT;  // heads per block
  constexpr int kQRows = kTile * MT, kKRows = kTile * KT;
  constexpr int kPacks = D / kPack<T>;
  constexpr int kDTiles = D / 8;  // output column tiles of 8
  extern __shared__ __align__(16) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem);             // [G][kQRows][kRowStride]; later O
  T* ks = qs + G * kQRows * kRowStride;           // [G][kKRows][kRowStride]
  T* vs = ks + G * kKRows * kRowStride;           // [G][kKRows][kRowStride]

  const int block = static_cast<int>(blockIdx.x);
  const std::int64_t b = block / groups;
  const int h0 = (block % groups) * G;
  const int heads_here = min(G, heads - h0);

  stage<T, D, G>(qs, kQRows, q + b * st.q[0] + h0 * st.q[2], st.q[1], st.q[2], sq, heads_here);
  stage<T, D, G>(ks, kKRows, k + b * st.k[0] + h0 * st.k[2], st.k[1], st.k[2], sk, heads_here);
  stage<T, D, G>(vs, kKRows, v + b * st.v[0] + h0 * st.v[2], st.v[1], st.v[2], sk, heads_here);
  cp_async_wait_all();
  __syncthreads();

  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int head = warp / MT, tile = warp % MT;
  if (head < heads_here && tile * kTile < sq) {
    T* const qt = qs + (head * kQRows + tile * kTile) * kRowStride;
    const T* const kt = ks + head * kKRows * kRowStride;
    const T* const vt = vs + head * kKRows * kRowStride;
    // ldmatrix row addresses: lane 8i + r gives row r of matrix i.
    const int r8 = lane & 7, second8 = (lane >> 3) & 1, second16 = lane >> 4;

    // S = Q K^T: s[j] is the 16x8 tile of keys 8j .. 8j + 7.
    float s[2 * KT][4] = {};
#pragma unroll
    for (int c = 0; c + 16 <= D; c += 16) {
      std::uint32_t a[4];  // matrices: rows 0-7 / 8-15 x columns c / c + 8
      ldmatrix_x4(a, qt + (r8 + second8 * 8) * kRowStride + c + second16 * 8);
#pragma unroll
      for (int n = 0; n < KT; ++n) {
        std::uint32_t bk[4];  // keys 16n + 0-7 x columns c / c + 8, then keys 16n + 8-15
        ldmatrix_x4(bk, kt + (16 * n + r8 + second16 * 8) * kRowStride + c + second8 * 8);
        mma_16x8x16<T>(s[2 * n], a, bk[0], bk[1]);
        mma_16x8x16<T>(s[2 * n + 1], a, bk[2], bk[3]);
      }
    }
    if constexpr (D % 16 == 8) {
      constexpr int c = D - 8;
      std::uint32_t a[2];  // rows 0-7 / 8-15 x columns c .. c + 7
      ldmatrix_x2(a, qt + (r8 + second8 * 8) * kRowStride + c);
#pragma unroll
      for (int n = 0; n < KT; ++n) {
        std::uint32_t bk[2];  // keys 16n + 0-7 / 16n + 8-15 x columns c .. c + 7
        ldmatrix_x2(bk, kt + (16 * n + r8 + second8 * 8) * kRowStride + c);
        mma_16x8x8<T>(s[2 * n], a, bk[0]);
        mma_16x8x8<T>(s[2 * n + 1], a, bk[1]);
      }
    }

    // Softmax of rows g and g + 8 (g = lane / 4), spread over the 4 lanes of a quad;
    // keys >= sk (padding) get probability 0.
    const int t = lane & 3;
    float row_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < 2 * KT; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = 8 * j + 2 * t + (e & 1);
        s[j][e] = key < sk ? s[j][e] * scale_log2 : -INFINITY;
        row_max[e >> 1] = fmaxf(row_max[e >> 1], s[j][e]);
      }
    }
    float row_sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[r] = fmaxf(row_max[r], __shfl_xor_sync(0xffffffffu, row_max[r], 1));
      row_max[r] = fmaxf(row_max[r], __shfl_xor_sync(0xffffffffu, row_max[r], 2));
    }
#pragma unroll
    for (int j = 0; j < 2 * KT; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = exp2f(s[j][e] - row_max[e >> 1]);  // key 0 is never masked: max finite
        row_sum[e >> 1] += s[j][e];
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 1);
      row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 2);
    }

    // O = P V. P's accumulator tiles 2n and 2n + 1 are, as they lie in the registers,
    // the A fragment of keys 16n .. 16n + 15.
    float o[kDTiles][4] = {};
#pragma unroll
    for (int n = 0; n < KT; ++n) {
      std::uint32_t p_hi[4], p_lo[4];
      split2<T>(s[2 * n][0], s[2 * n][1], p_hi[0], p_lo[0]);
      split2<T>(s[2 * n][2], s[2 * n][3], p_hi[1], p_lo[1]);
      split2<T>(s[2 * n + 1][0], s[2 * n + 1][1], p_hi[2], p_lo[2]);
      split2<T>(s[2 * n + 1][2], s[2 * n + 1][3], p_hi[3], p_lo[3]);
      const T* const vk = vt + (16 * n + r8 + second8 * 8) * kRowStride;
#pragma unroll
      for (int c = 0; c + 16 <= D; c += 16) {
        std::uint32_t bv[4];  // keys 0-7 / 8-15 x columns c .. c + 7, then c + 8 .. c + 15
        ldmatrix_x4_trans(bv, vk + c + second16 * 8);
        mma_16x8x16<T>(o[c / 8], p_lo, bv[0], bv[1]);
        mma_16x8x16<T>(o[c / 8], p_hi, bv[0], bv[1]);
        mma_16x8x16<T>(o[c / 8 + 1], p_lo, bv[2], bv[3]);
        mma_16x8x16<T>(o[c / 8 + 1], p_hi, bv[2], bv[3]);
      }
      if constexpr (D % 16 == 8) {
        std::uint32_t bv[2];  // keys 0-7 / 8-15 x columns D - 8 .. D - 1
        ldmatrix_x2_trans(bv, vk + D - 8);
        mma_16x8x16<T>(o[kDTiles - 1], p_lo, bv[0], bv[1]);
        mma_16x8x16<T>(o[kDTiles - 1], p_hi, bv[0], bv[1]);
      }
    }

    // Normalised rows g and g + 8 over this warp's q rows (no other warp reads them; the
    // warp's own ldmatrix reads of them are complete once every lane passes the sync).
    __syncwarp();
    const float inv[2] = {1.0f / row_sum[0], 1.0f / row_sum[1]};
    T* const o_row = qt + (lane >> 2) * kRowStride + 2 * t;
#pragma unroll
    for (int c = 0; c < kDTiles; ++c) {
      *reinterpret_cast<std::uint32_t*>(o_row + 8 * c) =
          pack2<T>(o[c][0] * inv[0], o[c][1] * inv[0]);
      *reinterpret_cast<std::uint32_t*>(o_row + 8 * kRowStride + 8 * c) =
          pack2<T>(o[c][2] * inv[1], o[c][3] * inv[1]);
    }
  }
  __syncthreads();

  // out [B, Sq, H, D] contiguous: a query row's G heads are one run of G * D elements.
  const int count = sq * G * kPacks;
  for (int i = static_cast<int>(threadIdx.x); i < count; i += static_cast<int>(blockDim.x)) {
    const int p = i % kPacks, row_head = i / kPacks;
    const int g = row_head % G, r = row_head / G;
    if (g >= heads_here) continue;
    const uint4 packed =
        *reinterpret_cast<const uint4*>(qs + (g * kQRows + r) * kRowStride + p * kPack<T>);
    *reinterpret_cast<uint4*>(out + ((b * sq + r) * heads + h0 + g) * D + p * kPack<T>) = packed;
  }
}

template <typename T, int D, int MT, int KT>
void launch_short(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                  const Tensor& v, float scale) {
  constexpr int G = kWarps / MT;
  const int sq = static_cast<int>(q.size(1)), sk = static_cast<int>(k.size(1));
  const int heads = static_cast<int>(q.size(2));
  const auto groups = static_cast<int>((q.size(2) + G - 1) / G);  // blocks per batch index
  ShortStrides st{};
  for (int i = 0; i < 3; ++i) {
    st.q[i] = q.stride(i);
    st.k[i] = k.stride(i);
    st.v[i] = v.stride(i);
  }
  // At most 4 * (16 + 2 * 32) * 72 * 2 B = 45 KiB (Sq <= 16, Sk > 16): no opt-in needed.
  constexpr std::size_t smem = static_cast<std::size_t>(G) * kTile * (MT + 2 * KT) *
                               kRowStride * sizeof(T);
  static_assert(smem <= 48 * 1024, "shared memory past the default 48 KiB limit");
  const auto grid = static_cast<unsigned>(q.size(0) * groups);  // < 2^31 (attention_short)
  attention_short_kernel<T, D, MT, KT><<<grid, kWarps * 32, smem, be.stream()>>>(
      out.data<T>(), q.data<const T>(), k.data<const T>(), v.data<const T>(), heads,
      groups, sq, sk, scale * kLog2e, st);
  DITSERVE_CUDA_CHECK_LAUNCH();
}

template <typename T, int D>
void dispatch_tiles(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                    const Tensor& v, float scale) {
  const bool two_query_tiles = q.size(1) > kTile, two_key_tiles = k.size(1) > kTile;
  if (two_query_tiles) {
    if (two_key_tiles) launch_short<T, D, 2, 2>(be, out, q, k, v, scale);
    else launch_short<T, D, 2, 1>(be, out, q, k, v, scale);
  } else {
    if (two_key_tiles) launch_short<T, D, 1, 2>(be, out, q, k, v, scale);
    else launch_short<T, D, 1, 1>(be, out, q, k, v, scale);
  }
}

}  // namespace

bool short_kernels_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("DITSERVE_SHORT_KERNELS");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

bool attention_short(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                     const Tensor& v, float scale) {
  if (q.dtype() == DType::f32 || q.size(1) > kMaxShortSequence || k.size(1) > kMaxShortSequence ||
      k.size(1) == 0)
    return false;
  static_assert(kMaxShortSequence <= 2 * kTile, "two query and key tiles at most");
  const std::int64_t d = q.size(3);
  // Head dims whose rows fit the 72-element shared-memory rows, in whole 8-column tiles.
  if (d != 64 && d != 72) return false;
  // The grid is B * ceil(H / G) blocks (G >= 2), indexed in 32 bits.
  if (q.size(2) > INT32_MAX || q.size(0) * ((q.size(2) + 1) / 2) > INT32_MAX) return false;
  if (!out.is_contiguous()) return false;
  constexpr int kPackElems = 8;  // bf16 and f16
  if (!packed_rows(q, kPackElems) || !packed_rows(k, kPackElems) || !packed_rows(v, kPackElems) ||
      !aligned16(out.raw_data()))
    return false;
  if (out.numel() == 0) return true;
  DeviceGuard guard(be.device_index());
  dispatch_float("attention_short", q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (sizeof(T) == 2) {
      if (d == 64) dispatch_tiles<T, 64>(be, out, q, k, v, scale);
      if (d == 72) dispatch_tiles<T, 72>(be, out, q, k, v, scale);
    }
  });
  return true;
}

}  // namespace ditserve::cuda
