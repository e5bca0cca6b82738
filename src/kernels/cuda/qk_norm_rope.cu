// qk_norm_rope: in place on the fused projection qkv [N, L, 3, H, D], q and k of every
// head become RoPE(RMSNorm(x) * weight). Memory-bound: it reads and writes q and k once
// (for STDiT3-XL/2 at 720p x 51 frames, 108 000 tokens x 2 x 1152 bf16 each way, ~1.0 GB
// per call, ~0.33 ms at 3 TB/s) and does ~10 flops per element.
//
// Layout of the work. A token's q and k are 2 * H head vectors of D/P 16-byte packs
// (P = 8 for bf16: 9 packs per head at D = 72, 288 per token at H = 16). A thread owns
// one pack position of the token (which of q/k, head, pack: fixed for the whole launch,
// so the divisions and the weight load happen once), a block is one token wide (or
// several tokens when a token has fewer than 128 packs), and consecutive threads touch
// consecutive 16-byte packs: q and k of a contiguous qkv are read and written as one
// 4.6 KB run per token. Each loop iteration covers kTokensPerThread tokens, whose loads
// are all issued before the first is used (64 bytes in flight per thread). The head's
// sum of squares is reduced through shared memory (each thread adds its head's D/P
// partials), and RoPE's cos/sin are computed once per (token, pair) into shared memory
// while the loads are in flight, instead of once per (token, q/k, head, pair).
//
// The previous version (a thread per head vector) made each warp's 16-byte access touch
// 32 packs 144 bytes apart, re-read the row in a second pass, and ran sincosf 2 * H times
// per (token, pair); it measured ~1.3-1.4 ms per call on an H100 (~0.75 TB/s). This one
// measured 0.37 ms per call there (~2.7 TB/s; 10.2 ms per 28 spatial-block calls at 720p x
// 51 frames, bench/results/step-h100.json).
//
// STDiT3's temporal blocks view their q, k and v (each a [B, F, P, C] block of one batched
// projection) as [B, F, P * heads, D]: tens of thousands of heads per frame position. Such
// a position is cut into groups of heads small enough for a block, each group a kernel
// token of its own that still rotates by its frame index l.

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

// Tokens each thread loads per iteration (independent 16-byte loads in flight).
constexpr int kTokensPerThread = 4;
// A block holds at least this many packs (several tokens when tokens are small).
constexpr int kMinBlockPacks = 128;
constexpr int kMaxBlockThreads = 1024;
// Blocks of at most this many threads (STDiT3: 288) get an instance limited to 56
// registers, which fits four 288-thread blocks per SM instead of three (64 registers).
constexpr int kCommonBlockThreads = 576;
constexpr std::size_t kMaxSharedBytes = 48 * 1024;  // without opting in to more

template <int N> struct alignas(N * sizeof(float)) Floats {
  float v[N];
};

// A 16-byte pack is moved as four raw 32-bit words (a struct of 16-bit elements indexed
// element by element can end up in local memory) and converted here, rounding to
// nearest even as from_f32 does.
template <typename T>
__device__ __forceinline__ void unpack(const uint4& u, float (&f)[kPack<T>]) {
  const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if constexpr (std::is_same_v<T, float>) {
      f[k] = __uint_as_float(w[k]);
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      f[2 * k] = __uint_as_float(w[k] << 16);
      f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    } else {
      __half2 h;
      memcpy(&h, &w[k], sizeof(h));
      const float2 v = __half22float2(h);
      f[2 * k] = v.x;
      f[2 * k + 1] = v.y;
    }
  }
}

template <typename T> __device__ __forceinline__ uint4 pack(const float (&f)[kPack<T>]) {
  unsigned w[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if constexpr (std::is_same_v<T, float>) {
      w[k] = __float_as_uint(f[k]);
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      const __nv_bfloat162 b = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
      memcpy(&w[k], &b, sizeof(b));
    } else {
      const __half2 h = __floats2half2_rn(f[2 * k], f[2 * k + 1]);
      memcpy(&w[k], &h, sizeof(h));
    }
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// A kernel "token" is (n, l, i): position l of sequence n (the RoPE index) and group i of
// its H / G heads (G = 1 unless a position's heads are too many for one block: STDiT3's
// temporal q/k viewed as [B, F, P * heads, D] hold P * heads of them).
struct QkLayout {
  std::int64_t tokens;     // N * L * G
  int len;                 // L
  int groups;              // G
  bool merged;             // (n, l, i) merge into one stride: a token's offset is token * st
  std::int64_t st;         // that stride
  int heads;               // H / G: heads of a token
  int head_packs;          // D / P
  int token_packs;         // 2 * (H / G) * D / P: threads per token
  int block_tokens;        // tokens side by side in a block
  int half;                // D / 2: rotation pairs per head (0 without RoPE)
  int buffer_floats;       // one of the two shared-memory buffers
  float eps;
  std::int64_t s0, s1, s2, s3;
  std::int64_t sg;         // stride of the head group i (H / G heads of stride s3)
};

// I indexes tokens and elements: uint32_t when both fit in 31 bits (cheaper division,
// fewer registers), else int64_t. kMaxThreads bounds blockDim.x.
template <typename T, typename I, int kMaxThreads>
__global__ void __launch_bounds__(kMaxThreads, kMaxThreads <= kCommonBlockThreads ? 2 : 1)
    qk_norm_rope_kernel(T* qkv, const T* q_weight, const T* k_weight, const float* angles,
                        QkLayout lay) {
  constexpr int P = kPack<T>;
  constexpr int R = kTokensPerThread;
  extern __shared__ __align__(16) float smem[];
  const int tid = static_cast<int>(threadIdx.x);
  const int threads = static_cast<int>(blockDim.x);

  // This thread's place in a token, fixed for the launch.
  const int slot = tid / lay.token_packs;  // token among the block's side-by-side tokens
  const int j = tid - slot * lay.token_packs;
  const int per_kind = lay.heads * lay.head_packs;
  const int which = j / per_kind;  // 0: q, 1: k
  const int h = (j - which * per_kind) / lay.head_packs;
  const int p = j - which * per_kind - h * lay.head_packs;
  const I in_token =
      static_cast<I>(which * lay.s2 + h * lay.s3 + static_cast<std::int64_t>(p) * P);
  const int head_first = tid - p;  // the thread holding pack 0 of this head
  const uint4 w = reinterpret_cast<const uint4*>(which == 0 ? q_weight : k_weight)[p];
  const bool rope = angles != nullptr;
  const I tokens = static_cast<I>(lay.tokens);
  const I len = static_cast<I>(lay.len);
  const int iter_tokens = R * lay.block_tokens;
  const float inv_d = 1.0f / static_cast<float>(lay.head_packs * P);

  int buffer = 0;
  for (I base = static_cast<I>(blockIdx.x) * iter_tokens; base < tokens;
       base += static_cast<I>(gridDim.x) * iter_tokens, buffer ^= 1) {
    // Two buffers, alternating: a thread writing iteration i + 1's partials cannot
    // overtake one still reading iteration i's (it would first pass i + 1's barrier).
    float* partial = smem + buffer * lay.buffer_floats;  // [R][threads]
    float* cos_t = partial + R * threads;                 // [iter_tokens][half]
    float* sin_t = cos_t + iter_tokens * lay.half;

    uint4 x[R];
    I off[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const I token = base + static_cast<I>(r * lay.block_tokens + slot);
      if (lay.merged) {
        off[r] = token * static_cast<I>(lay.st) + in_token;
      } else {
        const I groups = static_cast<I>(lay.groups);
        const I nl = token / groups;
        const I n = nl / len;
        off[r] = n * static_cast<I>(lay.s0) + (nl - n * len) * static_cast<I>(lay.s1) +
                 (token - nl * groups) * static_cast<I>(lay.sg) + in_token;
      }
      x[r] = token < tokens ? *reinterpret_cast<const uint4*>(qkv + off[r])
                            : make_uint4(0, 0, 0, 0);
    }
    if (rope) {
      // cos/sin of the iteration's tokens, while the loads above are in flight.
      for (int i = tid; i < iter_tokens * lay.half; i += threads) {
        const int t = i / lay.half, pair = i - t * lay.half;
        const I token = base + static_cast<I>(t);
        if (token < tokens) {
          const I l = (lay.groups == 1 ? token : token / static_cast<I>(lay.groups)) % len;
          sincosf(angles[static_cast<std::int64_t>(l) * lay.half + pair], &sin_t[i], &cos_t[i]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float v[P];
      unpack<T>(x[r], v);
      float sq = 0.0f;
#pragma unroll
      for (int i = 0; i < P; ++i) sq += v[i] * v[i];
      partial[r * threads + tid] = sq;
    }
    __syncthreads();
    float wf[P];
    unpack<T>(w, wf);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (base + static_cast<I>(r * lay.block_tokens + slot) >= tokens) continue;
      float sq = 0.0f;
      const float* head = partial + r * threads + head_first;
      for (int k = 0; k < lay.head_packs; ++k) sq += head[k];
      const float rstd = 1.0f / sqrtf(sq * inv_d + lay.eps);
      float y[P];
      unpack<T>(x[r], y);
#pragma unroll
      for (int i = 0; i < P; ++i) {
        // Rounded as rms_norm stores its output (rope then reads the stored values).
        y[i] = to_f32(from_f32<T>(y[i] * rstd * wf[i]));
      }
      if (rope) {
        const int row = (r * lay.block_tokens + slot) * lay.half + p * (P / 2);
        const Floats<P / 2> cs = *reinterpret_cast<const Floats<P / 2>*>(cos_t + row);
        const Floats<P / 2> sn = *reinterpret_cast<const Floats<P / 2>*>(sin_t + row);
#pragma unroll
        for (int i = 0; i < P / 2; ++i) {
          const float y0 = y[2 * i], y1 = y[2 * i + 1];
          y[2 * i] = y0 * cs.v[i] - y1 * sn.v[i];
          y[2 * i + 1] = y1 * cs.v[i] + y0 * sn.v[i];
        }
      }
      *reinterpret_cast<uint4*>(qkv + off[r]) = pack<T>(y);
    }
  }
}

}  // namespace

bool qk_norm_rope(CudaBackend& be, const Tensor& qkv, const Tensor& q_weight,
                  const Tensor& k_weight, float eps, const Tensor& angles) {
  const std::int64_t d = qkv.size(4);
  bool ok = false;
  dispatch_float("qk_norm_rope", qkv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    constexpr int P = kPack<T>;
    const bool rope = angles.defined();
    ok = d % P == 0 && qkv.stride(4) == 1 && aligned16(qkv.raw_data()) &&
         qkv.stride(0) % P == 0 && qkv.stride(1) % P == 0 && qkv.stride(2) % P == 0 &&
         qkv.stride(3) % P == 0 && q_weight.is_contiguous() && k_weight.is_contiguous() &&
         aligned16(q_weight.raw_data()) && aligned16(k_weight.raw_data()) &&
         (!rope || (d % 2 == 0 && angles.is_contiguous()));
    if (!ok || qkv.numel() == 0) return;
    QkLayout lay{};
    const std::int64_t heads = qkv.size(3);
    const std::int64_t head_packs = d / P;
    // A thread per pack of a token. A position whose q and k span more packs than a block
    // holds (2 * H * D / P > 1024) is cut into groups of heads, the largest group that
    // fits the 56-register instance (else any block): H / G heads per token.
    std::int64_t group_heads = 2 * heads * head_packs <= kMaxBlockThreads ? heads : 0;
    for (const int limit : {kCommonBlockThreads, kMaxBlockThreads}) {
      for (std::int64_t g = std::min(heads, limit / (2 * head_packs)); g >= 1 && group_heads == 0;
           --g) {
        if (heads % g == 0) group_heads = g;
      }
    }
    ok = group_heads != 0 && qkv.size(1) <= INT32_MAX && heads / group_heads <= INT32_MAX;
    if (!ok) return;
    lay.groups = static_cast<int>(heads / group_heads);
    lay.tokens = qkv.size(0) * qkv.size(1) * lay.groups;
    lay.len = static_cast<int>(qkv.size(1));
    lay.heads = static_cast<int>(group_heads);
    lay.head_packs = static_cast<int>(head_packs);
    lay.sg = group_heads * qkv.stride(3);
    // One stride for (n, l, i) when sequences, positions and groups follow each other.
    lay.st = lay.groups > 1 ? lay.sg : qkv.stride(1);
    lay.merged = (qkv.size(0) == 1 || qkv.stride(0) == qkv.size(1) * qkv.stride(1)) &&
                 (lay.groups == 1 || qkv.stride(1) == lay.groups * lay.sg);
    const std::int64_t token_packs = 2 * group_heads * head_packs;
    lay.token_packs = static_cast<int>(token_packs);
    lay.block_tokens = std::max(1, kMinBlockPacks / lay.token_packs);
    lay.half = rope ? static_cast<int>(d / 2) : 0;
    const int threads = lay.block_tokens * lay.token_packs;
    const int iter_tokens = kTokensPerThread * lay.block_tokens;
    lay.buffer_floats = round_up(kTokensPerThread * threads + 2 * iter_tokens * lay.half, 4);
    const std::size_t shared = 2 * static_cast<std::size_t>(lay.buffer_floats) * sizeof(float);
    ok = shared <= kMaxSharedBytes;
    if (!ok) return;
    lay.eps = eps;
    lay.s0 = qkv.stride(0);
    lay.s1 = qkv.stride(1);
    lay.s2 = qkv.stride(2);
    lay.s3 = qkv.stride(3);
    DeviceGuard guard(be.device_index());
    std::int64_t last_element = 0;  // the largest offset of an element the kernel touches
    for (int i = 0; i < 5; ++i) last_element += (qkv.size(i) - 1) * qkv.stride(i);
    const bool narrow = lay.tokens <= INT32_MAX && last_element < INT32_MAX;
    // Tensors past 2^31 elements (4 GiB of bf16) take one general instance.
    const auto kernel = !narrow ? qk_norm_rope_kernel<T, std::int64_t, kMaxBlockThreads>
                        : threads <= kCommonBlockThreads
                            ? qk_norm_rope_kernel<T, std::uint32_t, kCommonBlockThreads>
                            : qk_norm_rope_kernel<T, std::uint32_t, kMaxBlockThreads>;
    // A persistent grid: as many blocks as fit at once, each looping over tokens.
    int resident = 0;
    DITSERVE_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, threads,
                                                                      shared));
    const std::int64_t needed = (lay.tokens + iter_tokens - 1) / iter_tokens;
    const std::int64_t fit = static_cast<std::int64_t>(std::max(resident, 1)) *
                             std::max(be.multiprocessor_count(), 1);
    const auto grid = static_cast<unsigned>(std::min(needed, fit));
    kernel<<<grid, threads, shared, be.stream()>>>(
        qkv.data<T>(), q_weight.data<const T>(), k_weight.data<const T>(),
        rope ? angles.data<const float>() : nullptr, lay);
    DITSERVE_CUDA_CHECK_LAUNCH();
  });
  return ok;
}

}  // namespace ditserve::cuda
