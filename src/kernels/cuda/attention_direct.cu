// Exact scaled-dot-product attention for what cuDNN's fused kernel does not take (f32,
// head dims that are not a multiple of 8): f32 scores and an online softmax.
// A block of 4 warps owns 16 queries of one (batch, head); each warp owns 4 of them.
// Tiles of 32 keys and values are staged in shared memory as f32; lane j scores key j of
// the tile for the warp's 4 queries, then every lane accumulates output dims lane,
// lane + 32, ... (head dim <= 256, so 8 per lane) over the tile's keys.

#include <cstdint>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kQueriesPerWarp = 4;
constexpr int kQueriesPerBlock = kWarps * kQueriesPerWarp;
constexpr int kKeysPerTile = 32;
constexpr int kMaxHeadDim = static_cast<int>(kMaxDirectHeadDim);
constexpr int kDimChunks = kMaxHeadDim / 32;

struct AttentionParams {
  std::int64_t q_stride[3];  // batch, sequence, head (the head dim has unit stride)
  std::int64_t k_stride[3];
  std::int64_t v_stride[3];
  std::int64_t sq, sk;
  int heads;
  int d;
  int ld;  // row stride of the staged K/V tiles in floats: odd, so lanes hit distinct banks
  float scale;
  const std::int32_t* key_lengths;  // [B] or null
  const void* bias;                 // [B, H, Sq, Sk] view or null
  int bias_dtype;
  std::int64_t bias_stride[4];
};

// Shared memory floats: K and V tiles, the block's queries, the warps' probabilities.
std::size_t smem_floats(int d, int ld) {
  return static_cast<std::size_t>(2 * kKeysPerTile * ld + kQueriesPerBlock * d +
                                  kWarps * kQueriesPerWarp * kKeysPerTile);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    attention_kernel(T* out, const T* q, const T* k, const T* v, AttentionParams p) {
  extern __shared__ float smem[];
  const int d = p.d, ld = p.ld;
  float* ks = smem;
  float* vs = ks + kKeysPerTile * ld;
  float* qs = vs + kKeysPerTile * ld;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* ps = qs + kQueriesPerBlock * d + warp * kQueriesPerWarp * kKeysPerTile;

  const int h = blockIdx.y;
  const std::int64_t b = blockIdx.z;
  const std::int64_t q0 = static_cast<std::int64_t>(blockIdx.x) * kQueriesPerBlock;
  const int qrow = warp * kQueriesPerWarp;  // this warp's first row of qs

  for (int idx = threadIdx.x; idx < kQueriesPerBlock * d; idx += kThreads) {
    const int r = idx / d, dd = idx - r * d;
    const std::int64_t qi = q0 + r;
    qs[idx] = qi < p.sq
                  ? to_f32(q[b * p.q_stride[0] + qi * p.q_stride[1] + h * p.q_stride[2] + dd])
                  : 0.0f;
  }
  std::int64_t kv_len = p.sk;
  if (p.key_lengths != nullptr) {
    const std::int64_t len = p.key_lengths[b];
    kv_len = len < 0 ? 0 : (len < p.sk ? len : p.sk);
  }

  float m[kQueriesPerWarp], l[kQueriesPerWarp], acc[kQueriesPerWarp][kDimChunks];
#pragma unroll
  for (int r = 0; r < kQueriesPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < kDimChunks; ++i) acc[r][i] = 0.0f;
  }

  for (std::int64_t t0 = 0; t0 < kv_len; t0 += kKeysPerTile) {
    // The previous tile is consumed (and, the first time, qs is written) by every warp.
    __syncthreads();
    const int tile = static_cast<int>(kv_len - t0 < kKeysPerTile ? kv_len - t0 : kKeysPerTile);
    for (int idx = threadIdx.x; idx < kKeysPerTile * d; idx += kThreads) {
      const int j = idx / d, dd = idx - j * d;
      float kv = 0.0f, vv = 0.0f;
      if (j < tile) {
        const std::int64_t key = t0 + j;
        kv = to_f32(k[b * p.k_stride[0] + key * p.k_stride[1] + h * p.k_stride[2] + dd]);
        vv = to_f32(v[b * p.v_stride[0] + key * p.v_stride[1] + h * p.v_stride[2] + dd]);
      }
      ks[j * ld + dd] = kv;
      vs[j * ld + dd] = vv;
    }
    __syncthreads();

    float s[kQueriesPerWarp];
#pragma unroll
    for (int r = 0; r < kQueriesPerWarp; ++r) s[r] = 0.0f;
    const float* krow = ks + lane * ld;
    for (int dd = 0; dd < d; ++dd) {
      const float kval = krow[dd];
#pragma unroll
      for (int r = 0; r < kQueriesPerWarp; ++r) s[r] += qs[(qrow + r) * d + dd] * kval;
    }

#pragma unroll
    for (int r = 0; r < kQueriesPerWarp; ++r) {
      const std::int64_t qi = q0 + qrow + r;
      float score = -INFINITY;
      if (lane < tile) {
        score = s[r] * p.scale;
        if (p.bias != nullptr && qi < p.sq) {
          score += load_any_float(p.bias, p.bias_dtype,
                                  b * p.bias_stride[0] + h * p.bias_stride[1] +
                                      qi * p.bias_stride[2] + (t0 + lane) * p.bias_stride[3]);
        }
      }
      const float m_new = fmaxf(m[r], warp_max(score));
      float prob = 0.0f, alpha = 1.0f;
      if (m_new != -INFINITY) {  // else every score so far is masked: nothing to rescale
        prob = expf(score - m_new);
        alpha = expf(m[r] - m_new);
      }
      l[r] = l[r] * alpha + warp_sum(prob);
      m[r] = m_new;
#pragma unroll
      for (int i = 0; i < kDimChunks; ++i) acc[r][i] *= alpha;
      ps[r * kKeysPerTile + lane] = prob;
    }
    __syncwarp();

    for (int j = 0; j < tile; ++j) {
      float pj[kQueriesPerWarp];
#pragma unroll
      for (int r = 0; r < kQueriesPerWarp; ++r) pj[r] = ps[r * kKeysPerTile + j];
      const float* vrow = vs + j * ld;
#pragma unroll
      for (int i = 0; i < kDimChunks; ++i) {
        const int dd = lane + 32 * i;
        if (dd < d) {
          const float vv = vrow[dd];
#pragma unroll
          for (int r = 0; r < kQueriesPerWarp; ++r) acc[r][i] += pj[r] * vv;
        }
      }
    }
    __syncwarp();  // ps is read by every lane before the next tile overwrites it
  }

#pragma unroll
  for (int r = 0; r < kQueriesPerWarp; ++r) {
    const std::int64_t qi = q0 + qrow + r;
    if (qi >= p.sq) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // no unmasked key: zeros
    T* o = out + ((b * p.sq + qi) * p.heads + h) * d;
#pragma unroll
    for (int i = 0; i < kDimChunks; ++i) {
      const int dd = lane + 32 * i;
      if (dd < d) o[dd] = from_f32<T>(acc[r][i] * inv);
    }
  }
}

}  // namespace

void attention_direct(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                      const Tensor& v, float scale, const Tensor& key_lengths,
                      const Tensor& bias) {
  constexpr std::string_view op = "attention_direct";
  DITSERVE_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op, ": q ", q.describe(), ", k ",
                 k.describe(), ", v ", v.describe(), "; expected [B, S, H, D]");
  const std::int64_t batch = q.size(0), sq = q.size(1), heads = q.size(2), d = q.size(3);
  const std::int64_t sk = k.size(1);
  DITSERVE_CHECK(k.shape() == Shape({batch, sk, heads, d}) && v.shape() == k.shape(), op,
                 ": k ", k.describe(), " and v ", v.describe(), " do not match q ", q.describe());
  DITSERVE_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype() && out.dtype() == q.dtype(), op,
                 ": q, k, v and out must share one dtype");
  DITSERVE_CHECK(out.is_contiguous() && out.shape() == q.shape(), op, ": out is ",
                 out.describe(), "; expected contiguous ", shape_str(q.shape()));
  DITSERVE_CHECK(d >= 1 && d <= kMaxHeadDim, op, ": head dim ", d, " is outside [1, ",
                 kMaxHeadDim, "]");
  for (const Tensor* t : {&q, &k, &v}) {
    DITSERVE_CHECK(d == 1 || t->stride(3) == 1, op, ": ", t->describe(),
                   " needs a unit stride on the head dim");
  }
  DITSERVE_CHECK(heads <= 65535 && batch <= 65535, op, ": at most 65535 batches and heads, got ",
                 q.describe());
  if (key_lengths.defined()) {
    DITSERVE_CHECK(key_lengths.dtype() == DType::i32 && key_lengths.is_contiguous() &&
                       key_lengths.shape() == Shape({batch}),
                   op, ": key_lengths is ", key_lengths.describe(), "; expected contiguous i32 [",
                   batch, "]");
  }
  if (bias.defined()) {
    DITSERVE_CHECK(bias.shape() == Shape({batch, heads, sq, sk}) && is_floating(bias.dtype()), op,
                   ": bias is ", bias.describe(), "; expected a float view of [", batch, ", ",
                   heads, ", ", sq, ", ", sk, "]");
  }
  if (out.numel() == 0) return;

  AttentionParams p{};
  for (int i = 0; i < 3; ++i) {
    p.q_stride[i] = q.stride(i);
    p.k_stride[i] = k.stride(i);
    p.v_stride[i] = v.stride(i);
  }
  p.sq = sq;
  p.sk = sk;
  p.heads = static_cast<int>(heads);
  p.d = static_cast<int>(d);
  p.ld = p.d % 2 == 0 ? p.d + 1 : p.d;
  p.scale = scale;
  p.key_lengths = key_lengths.defined() ? key_lengths.data<const std::int32_t>() : nullptr;
  p.bias = bias.defined() ? bias.raw_data() : nullptr;
  p.bias_dtype = bias.defined() ? static_cast<int>(bias.dtype()) : 0;
  for (int i = 0; i < 4; ++i) p.bias_stride[i] = bias.defined() ? bias.stride(i) : 0;

  const std::size_t smem = smem_floats(p.d, p.ld) * sizeof(float);
  const std::int64_t q_blocks = (sq + kQueriesPerBlock - 1) / kQueriesPerBlock;
  DITSERVE_CHECK(q_blocks <= INT32_MAX, op, ": too many queries in ", q.describe());
  const dim3 grid(static_cast<unsigned>(q_blocks), static_cast<unsigned>(heads),
                  static_cast<unsigned>(batch));
  DeviceGuard guard(be.device_index());
  dispatch_float(op, q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DITSERVE_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<T>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem)));
    attention_kernel<T><<<grid, kThreads, smem, be.stream()>>>(
        out.data<T>(), q.data<const T>(), k.data<const T>(), v.data<const T>(), p);
    DITSERVE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ditserve::cuda
