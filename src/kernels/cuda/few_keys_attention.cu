// Attention of many queries to few keys (STDiT3's cross-attention: 54 000 tokens of a
// 720p sample against its <= 300 caption tokens; the spatial self-attention of a small
// frame), where every key and value of one (batch, head) fits in shared memory at once.
//
// cuDNN's flash kernel pads a head dim of 72 to its 128-wide tiles and 300 keys to 384, so
// it computes ~2.3x the useful product; here D = 72 is 4.5 MMA steps (m16n8k16 plus one
// m16n8k8) and the keys are padded to a multiple of 32 only.
//
// Layout of the work. A block of 4 warps takes one (batch, head) and kQueriesPerBlock
// consecutive queries; blockIdx.x runs over the query chunks of one (batch, head) first,
// so the blocks sharing its K and V are resident together and read them from L2.
// 1. The block stages K and V of its (batch, head) in shared memory with 16-byte cp.async
//    (rows padded with zeros to a multiple of 32; 144-byte rows, so the 8 rows of an
//    ldmatrix phase fall in distinct banks).
// 2. Each warp then takes 32 queries (two 16-row MMA tiles) at a time: stages them in
//    its own shared rows, loads Q's fragments once, and walks the keys in chunks of 32:
//    S = Q K^T in f32, an online softmax (running max and sum per row, the output
//    rescaled when the max grows; keys past key_lengths[b] get probability 0), O += P V
//    with P rounded to the 16-bit type as flash kernels do. The normalised rows go back
//    through the warp's shared rows and out as coalesced 16-byte stores.
// Chunks wholly past the batch index's key length are skipped.

#include <cstdint>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/mma_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kKeyChunk = 32;         // keys per softmax update
// A warp computes kQueryTiles 16-row tiles at once: every K and V fragment it loads from
// shared memory feeds that many MMAs (with one tile, ldmatrix bandwidth capped the kernel
// at ~190 TFLOP/s on an H100).
constexpr int kQueryTiles = 2;
constexpr int kQueriesPerBlock = 256;  // two passes of 32 rows per warp over staged K and V
constexpr int kRowStride = 72;        // shared-memory row, elements (144 B)
constexpr float kLog2e = 1.4426950408889634f;

struct FewKeysStrides {
  std::int64_t q[3], k[3], v[3];  // batch, sequence, head (elements; the head dim is unit)
};

// 2^x by the SFU alone (exp2f adds range handling): 2^-inf = 0, ~2 ulp, denormals flushed.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Copies `rows` rows of D elements (row stride `stride`) into dst[padded_rows][kRowStride],
// zeroing rows rows..padded_rows-1; `first`/`step` spread the packs over the threads.
template <typename T, int D>
__device__ __forceinline__ void stage_rows(T* dst, int padded_rows, const T* src,
                                           std::int64_t stride, int rows, int first, int step) {
  constexpr int kPacks = D / kPack<T>;
  for (int i = first; i < padded_rows * kPacks; i += step) {
    const int r = i / kPacks, p = i % kPacks;
    T* d = dst + r * kRowStride + p * kPack<T>;
    if (r < rows) {
      cp_async_16(d, src + r * stride + p * kPack<T>);
    } else {
      *reinterpret_cast<uint4*>(d) = make_uint4(0, 0, 0, 0);
    }
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(kWarps * 32)
    few_keys_attention_kernel(T* __restrict__ out, const T* __restrict__ q,
                              const T* __restrict__ k, const T* __restrict__ v,
                              const std::int32_t* __restrict__ key_lengths, int heads, int sq,
                              int sk, int padded_keys, float scale_log2, FewKeysStrides st) {
  static_assert(D % 16 == 0 || D % 16 == 8, "D must be a multiple of 8");
  static_assert(D <= kRowStride, "a head vector must fit a shared-memory row");
  constexpr int kDTiles = D / 8;
  constexpr int kPacks = D / kPack<T>;
  constexpr int kWarpRows = 16 * kQueryTiles;
  extern __shared__ __align__(16) unsigned char smem[];
  T* ks = reinterpret_cast<T*>(smem);     // [padded_keys][kRowStride]
  T* vs = ks + padded_keys * kRowStride;  // [padded_keys][kRowStride]
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  T* qs = vs + padded_keys * kRowStride + warp * kWarpRows * kRowStride;  // this warp's rows

  const int h = static_cast<int>(blockIdx.y);
  const std::int64_t b = blockIdx.z;
  const int len = key_lengths != nullptr ? min(max(key_lengths[b], 1), sk) : sk;
  const int chunks = (len + kKeyChunk - 1) / kKeyChunk;
  const int rows_needed = chunks * kKeyChunk;  // keys read below; the rest stays unstaged

  stage_rows<T, D>(ks, rows_needed, k + b * st.k[0] + h * st.k[2], st.k[1], len,
                   static_cast<int>(threadIdx.x), kWarps * 32);
  stage_rows<T, D>(vs, rows_needed, v + b * st.v[0] + h * st.v[2], st.v[1], len,
                   static_cast<int>(threadIdx.x), kWarps * 32);
  cp_async_wait_all();
  __syncthreads();

  const int r8 = lane & 7, second8 = (lane >> 3) & 1, second16 = lane >> 4;
  const int g = lane >> 2, t = lane & 3;
  const T* const q_bh = q + b * st.q[0] + h * st.q[2];
  const int block_first = static_cast<int>(blockIdx.x) * kQueriesPerBlock;
  for (int first = block_first + warp * kWarpRows;
       first < min(sq, block_first + kQueriesPerBlock); first += kWarps * kWarpRows) {
    const int rows = min(kWarpRows, sq - first);
    stage_rows<T, D>(qs, kWarpRows, q_bh + static_cast<std::int64_t>(first) * st.q[1], st.q[1],
                     rows, lane, 32);
    cp_async_wait_all();
    __syncwarp();

    // Q's A fragments of each 16-row tile m, for every 16 (and the last 8) columns of D.
    std::uint32_t qa[kQueryTiles][D / 16][4];
    std::uint32_t qa_tail[kQueryTiles][2] = {};
#pragma unroll
    for (int m = 0; m < kQueryTiles; ++m) {
      const T* const rows_m = qs + (16 * m + r8 + second8 * 8) * kRowStride;
#pragma unroll
      for (int c = 0; c < D / 16; ++c) ldmatrix_x4(qa[m][c], rows_m + 16 * c + second16 * 8);
      if constexpr (D % 16 == 8) ldmatrix_x2(qa_tail[m], rows_m + D - 8);
    }

    float o[kQueryTiles][kDTiles][4] = {};
    float row_max[kQueryTiles][2];  // rows g and g + 8 of each tile, raw scores
    float row_sum[kQueryTiles][2];  // this lane's part of those rows' sums
#pragma unroll
    for (int m = 0; m < kQueryTiles; ++m) {
      row_max[m][0] = row_max[m][1] = -INFINITY;
      row_sum[m][0] = row_sum[m][1] = 0.0f;
    }
    for (int chunk = 0; chunk < chunks; ++chunk) {
      const int key0 = chunk * kKeyChunk;
      // S = Q K^T: s[m][j] is the 16x8 tile of rows 16m.. and keys key0 + 8j .. + 7. Each K
      // fragment serves every query tile: shared-memory reads per MMA fall with kQueryTiles.
      float s[kQueryTiles][kKeyChunk / 8][4] = {};
#pragma unroll
      for (int c = 0; c < D / 16; ++c) {
#pragma unroll
        for (int n = 0; n < kKeyChunk / 16; ++n) {
          std::uint32_t bk[4];  // keys 16n + 0-7 x columns 16c / 16c + 8, then keys 16n + 8-15
          ldmatrix_x4(bk, ks + (key0 + 16 * n + r8 + second16 * 8) * kRowStride + 16 * c +
                              second8 * 8);
#pragma unroll
          for (int m = 0; m < kQueryTiles; ++m) {
            mma_16x8x16<T>(s[m][2 * n], qa[m][c], bk[0], bk[1]);
            mma_16x8x16<T>(s[m][2 * n + 1], qa[m][c], bk[2], bk[3]);
          }
        }
      }
      if constexpr (D % 16 == 8) {
#pragma unroll
        for (int n = 0; n < kKeyChunk / 16; ++n) {
          std::uint32_t bk[2];  // keys 16n + 0-7 / 16n + 8-15 x columns D - 8 .. D - 1
          ldmatrix_x2(bk, ks + (key0 + 16 * n + r8 + second8 * 8) * kRowStride + D - 8);
#pragma unroll
          for (int m = 0; m < kQueryTiles; ++m) {
            mma_16x8x8<T>(s[m][2 * n], qa_tail[m], bk[0]);
            mma_16x8x8<T>(s[m][2 * n + 1], qa_tail[m], bk[1]);
          }
        }
      }

      // Online softmax over this chunk; rows g and g + 8 are spread over a quad's lanes. The
      // running max is kept on the raw scores (scale > 0 commutes with max), so a
      // probability is one FFMA and one ex2: exp2(s * scale_log2 - max * scale_log2). Only
      // the chunk holding the key length masks.
      const bool partial = key0 + kKeyChunk > len;  // the same for the whole warp
#pragma unroll
      for (int m = 0; m < kQueryTiles; ++m) {
        float chunk_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int j = 0; j < kKeyChunk / 8; ++j) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            if (partial && key0 + 8 * j + 2 * t + (e & 1) >= len) s[m][j][e] = -INFINITY;
            chunk_max[e >> 1] = fmaxf(chunk_max[e >> 1], s[m][j][e]);
          }
        }
        float rescale[2], offset[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          chunk_max[r] = fmaxf(chunk_max[r], __shfl_xor_sync(0xffffffffu, chunk_max[r], 1));
          chunk_max[r] = fmaxf(chunk_max[r], __shfl_xor_sync(0xffffffffu, chunk_max[r], 2));
          // Chunk 0 holds key 0, which is never masked: the max is finite from then on.
          const float new_max = fmaxf(row_max[m][r], chunk_max[r]);
          rescale[r] = fast_exp2((row_max[m][r] - new_max) * scale_log2);  // 0 on chunk 0
          row_max[m][r] = new_max;
          row_sum[m][r] *= rescale[r];
          offset[r] = new_max * scale_log2;
        }
#pragma unroll
        for (int c = 0; c < kDTiles; ++c) {
          o[m][c][0] *= rescale[0];
          o[m][c][1] *= rescale[0];
          o[m][c][2] *= rescale[1];
          o[m][c][3] *= rescale[1];
        }
#pragma unroll
        for (int j = 0; j < kKeyChunk / 8; ++j) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            s[m][j][e] = fast_exp2(fmaf(s[m][j][e], scale_log2, -offset[e >> 1]));
            row_sum[m][e >> 1] += s[m][j][e];
          }
        }
      }

      // O += P V. P's accumulator tiles 2n and 2n + 1, as they lie in the registers, are
      // the A fragment of keys key0 + 16n .. + 15; each V fragment serves every query tile.
#pragma unroll
      for (int n = 0; n < kKeyChunk / 16; ++n) {
        std::uint32_t pa[kQueryTiles][4];
#pragma unroll
        for (int m = 0; m < kQueryTiles; ++m) {
          pa[m][0] = pack2<T>(s[m][2 * n][0], s[m][2 * n][1]);
          pa[m][1] = pack2<T>(s[m][2 * n][2], s[m][2 * n][3]);
          pa[m][2] = pack2<T>(s[m][2 * n + 1][0], s[m][2 * n + 1][1]);
          pa[m][3] = pack2<T>(s[m][2 * n + 1][2], s[m][2 * n + 1][3]);
        }
        const T* const vk = vs + (key0 + 16 * n + r8 + second8 * 8) * kRowStride;
#pragma unroll
        for (int c = 0; c + 16 <= D; c += 16) {
          std::uint32_t bv[4];  // keys 0-7 / 8-15 x columns c .. c + 7, then c + 8 .. c + 15
          ldmatrix_x4_trans(bv, vk + c + second16 * 8);
#pragma unroll
          for (int m = 0; m < kQueryTiles; ++m) {
            mma_16x8x16<T>(o[m][c / 8], pa[m], bv[0], bv[1]);
            mma_16x8x16<T>(o[m][c / 8 + 1], pa[m], bv[2], bv[3]);
          }
        }
        if constexpr (D % 16 == 8) {
          std::uint32_t bv[2];  // keys 0-7 / 8-15 x columns D - 8 .. D - 1
          ldmatrix_x2_trans(bv, vk + D - 8);
#pragma unroll
          for (int m = 0; m < kQueryTiles; ++m) mma_16x8x16<T>(o[m][kDTiles - 1], pa[m], bv[0], bv[1]);
        }
      }
    }

    // The normalised tiles over the warp's q rows (its own ldmatrix reads of them are done
    // once every lane passes the sync), then out as 16-byte packs.
    __syncwarp();
#pragma unroll
    for (int m = 0; m < kQueryTiles; ++m) {
      float inv[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float total = row_sum[m][r];
        total += __shfl_xor_sync(0xffffffffu, total, 1);
        total += __shfl_xor_sync(0xffffffffu, total, 2);
        inv[r] = 1.0f / total;
      }
      T* const o_row = qs + (16 * m + g) * kRowStride + 2 * t;
#pragma unroll
      for (int c = 0; c < kDTiles; ++c) {
        *reinterpret_cast<std::uint32_t*>(o_row + 8 * c) =
            pack2<T>(o[m][c][0] * inv[0], o[m][c][1] * inv[0]);
        *reinterpret_cast<std::uint32_t*>(o_row + 8 * kRowStride + 8 * c) =
            pack2<T>(o[m][c][2] * inv[1], o[m][c][3] * inv[1]);
      }
    }
    __syncwarp();
    for (int i = lane; i < rows * kPacks; i += 32) {
      const int r = i / kPacks, p = i % kPacks;
      const uint4 packed = *reinterpret_cast<const uint4*>(qs + r * kRowStride + p * kPack<T>);
      *reinterpret_cast<uint4*>(out + ((b * sq + first + r) * heads + h) * D + p * kPack<T>) =
          packed;
    }
    __syncwarp();  // the next rows' staging overwrites these
  }
}

std::size_t shared_bytes(int padded_keys, std::size_t element) {
  return static_cast<std::size_t>(2 * padded_keys + kWarps * 16 * kQueryTiles) * kRowStride *
         element;
}

template <typename T, int D>
void launch_few_keys(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                     const Tensor& v, const Tensor& key_lengths, float scale) {
  const int sq = static_cast<int>(q.size(1)), sk = static_cast<int>(k.size(1));
  const int heads = static_cast<int>(q.size(2));
  const int padded_keys = (sk + kKeyChunk - 1) / kKeyChunk * kKeyChunk;
  static_assert(kMaxFewKeys % kKeyChunk == 0, "the largest staging is kMaxFewKeys rows");
  FewKeysStrides st{};
  for (int i = 0; i < 3; ++i) {
    st.q[i] = q.stride(i);
    st.k[i] = k.stride(i);
    st.v[i] = v.stride(i);
  }
  const std::size_t smem = shared_bytes(padded_keys, sizeof(T));
  // Above the default 48 KiB: opt in (once per kernel and device is enough; cheap to repeat).
  DITSERVE_CUDA_CHECK(cudaFuncSetAttribute(few_keys_attention_kernel<T, D>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(shared_bytes(kMaxFewKeys, sizeof(T)))));
  const dim3 grid(static_cast<unsigned>((sq + kQueriesPerBlock - 1) / kQueriesPerBlock),
                  static_cast<unsigned>(heads), static_cast<unsigned>(q.size(0)));
  few_keys_attention_kernel<T, D><<<grid, kWarps * 32, smem, be.stream()>>>(
      out.data<T>(), q.data<const T>(), k.data<const T>(), v.data<const T>(),
      key_lengths.defined() ? key_lengths.data<const std::int32_t>() : nullptr, heads, sq, sk,
      padded_keys, scale * kLog2e, st);
  DITSERVE_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool attention_few_keys(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                        const Tensor& v, float scale, const Tensor& key_lengths) {
  if (q.dtype() == DType::f32 || k.size(1) > kMaxFewKeys || k.size(1) == 0) return false;
  if (!(scale > 0.0f)) return false;  // the running max is taken before scaling
  const std::int64_t d = q.size(3);
  if (d != 64 && d != 72) return false;
  // Grid: query chunks x heads x batch (y and z at most 65535).
  if (q.size(1) > INT32_MAX - kQueriesPerBlock || q.size(2) > 65535 || q.size(0) > 65535)
    return false;
  if (!out.is_contiguous() || !aligned16(out.raw_data())) return false;
  constexpr int kPackElems = 8;  // bf16 and f16
  if (!packed_rows(q, kPackElems) || !packed_rows(k, kPackElems) || !packed_rows(v, kPackElems))
    return false;
  if (key_lengths.defined() &&
      (key_lengths.dtype() != DType::i32 || !key_lengths.is_contiguous() ||
       key_lengths.numel() != q.size(0)))
    return false;
  if (out.numel() == 0) return true;
  DeviceGuard guard(be.device_index());
  dispatch_float("attention_few_keys", q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (sizeof(T) == 2) {
      if (d == 64) launch_few_keys<T, 64>(be, out, q, k, v, key_lengths, scale);
      if (d == 72) launch_few_keys<T, 72>(be, out, q, k, v, key_lengths, scale);
    }
  });
  return true;
}

}  // namespace ditserve::cuda
