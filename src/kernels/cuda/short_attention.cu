// The attention kernel of a DiT block where generic ones waste most of the time
// (STDiT3's temporal blocks: <= 30 frames at thousands of positions), and the switch
// shared with the fused q/k RMSNorm + RoPE (qk_norm_rope.cu).
//
// attention_short: one warp per (batch, head) holds K and V of up to 32 keys in shared
// memory; lane i owns query i, keeps its q row and output row in registers (head dim a
// compile-time constant) and runs an online softmax over the keys in f32. It reads q,
// k, v once and writes out once: memory-bound, where cuDNN's flash kernel pads the
// sequence to its 64- or 128-row tiles and runs mostly empty.

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

struct ShortStrides {
  std::int64_t q[3], k[3], v[3];  // batch, sequence, head (elements; the head dim is unit)
};

template <typename T, int D>
__global__ void attention_short_kernel(T* out, const T* q, const T* k, const T* v, int pairs,
                                       int heads, int sq, int sk, float scale, ShortStrides st) {
  constexpr int P = kPack<T>;
  constexpr int kPacks = D / P;
  extern __shared__ __align__(16) unsigned char smem[];
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int warps = static_cast<int>(blockDim.x) / 32;
  const std::int64_t pair = static_cast<std::int64_t>(blockIdx.x) * warps + warp;
  if (pair >= pairs) return;  // whole warps only: no block-wide barrier below
  const std::int64_t b = pair / heads;
  const std::int64_t h = pair % heads;
  T* ks = reinterpret_cast<T*>(smem) + static_cast<std::int64_t>(warp) * 2 * sk * D;
  T* vs = ks + static_cast<std::int64_t>(sk) * D;
  const T* kb = k + b * st.k[0] + h * st.k[2];
  const T* vb = v + b * st.v[0] + h * st.v[2];
  for (int i = lane; i < sk * kPacks; i += 32) {
    const int row = i / kPacks, p = i % kPacks;
    reinterpret_cast<Pack<T>*>(ks + row * D)[p] =
        reinterpret_cast<const Pack<T>*>(kb + row * st.k[1])[p];
    reinterpret_cast<Pack<T>*>(vs + row * D)[p] =
        reinterpret_cast<const Pack<T>*>(vb + row * st.v[1])[p];
  }
  __syncwarp();
  if (lane >= sq) return;

  float qv[D], o[D];
  const T* qr = q + b * st.q[0] + lane * st.q[1] + h * st.q[2];
#pragma unroll
  for (int p = 0; p < kPacks; ++p) {
    const Pack<T> in = reinterpret_cast<const Pack<T>*>(qr)[p];
#pragma unroll
    for (int i = 0; i < P; ++i) {
      qv[p * P + i] = to_f32(in.v[i]) * scale;
      o[p * P + i] = 0.0f;
    }
  }
  float m = -INFINITY, l = 0.0f;
  for (int j = 0; j < sk; ++j) {
    const Pack<T>* kr = reinterpret_cast<const Pack<T>*>(ks + j * D);
    float s = 0.0f;
#pragma unroll
    for (int p = 0; p < kPacks; ++p) {
      const Pack<T> kp = kr[p];
#pragma unroll
      for (int i = 0; i < P; ++i) s = fmaf(qv[p * P + i], to_f32(kp.v[i]), s);
    }
    const float mn = fmaxf(m, s);
    const float corr = expf(m - mn);  // 0 for the first key (m = -inf)
    const float pj = expf(s - mn);
    l = l * corr + pj;
    const Pack<T>* vr = reinterpret_cast<const Pack<T>*>(vs + j * D);
#pragma unroll
    for (int p = 0; p < kPacks; ++p) {
      const Pack<T> vp = vr[p];
#pragma unroll
      for (int i = 0; i < P; ++i) o[p * P + i] = fmaf(pj, to_f32(vp.v[i]), o[p * P + i] * corr);
    }
    m = mn;
  }
  const float inv = 1.0f / l;
  T* orow = out + ((b * sq + lane) * heads + h) * D;
#pragma unroll
  for (int p = 0; p < kPacks; ++p) {
    Pack<T> r;
#pragma unroll
    for (int i = 0; i < P; ++i) r.v[i] = from_f32<T>(o[p * P + i] * inv);
    reinterpret_cast<Pack<T>*>(orow)[p] = r;
  }
}

template <typename T, int D>
void launch_short(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                  const Tensor& v, float scale) {
  const int batch = static_cast<int>(q.size(0)), sq = static_cast<int>(q.size(1));
  const int heads = static_cast<int>(q.size(2)), sk = static_cast<int>(k.size(1));
  ShortStrides st{};
  for (int i = 0; i < 3; ++i) {
    st.q[i] = q.stride(i);
    st.k[i] = k.stride(i);
    st.v[i] = v.stride(i);
  }
  const std::size_t per_warp = 2 * static_cast<std::size_t>(sk) * D * sizeof(T);
  const int warps = 4 * per_warp <= 48 * 1024 ? 4 : 2;  // 4 * 9 KB at most for D <= 72
  const std::int64_t pairs = static_cast<std::int64_t>(batch) * heads;
  const auto grid = static_cast<unsigned>((pairs + warps - 1) / warps);
  attention_short_kernel<T, D><<<grid, warps * 32, warps * per_warp, be.stream()>>>(
      out.data<T>(), q.data<const T>(), k.data<const T>(), v.data<const T>(),
      static_cast<int>(pairs), heads, sq, sk, scale, st);
  DITSERVE_CUDA_CHECK_LAUNCH();
}

bool packed_rows(const Tensor& t, int pack) {
  return aligned16(t.raw_data()) && t.stride(0) % pack == 0 && t.stride(1) % pack == 0 &&
         t.stride(2) % pack == 0 && t.stride(3) == 1;
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
  if (q.dtype() == DType::f32 || q.size(1) > kMaxShortSequence || k.size(1) > kMaxShortSequence)
    return false;
  const std::int64_t d = q.size(3);
  // Wider heads would not fit q and the output row in registers (they would spill).
  if (d != 64 && d != 72) return false;
  if (q.size(0) * q.size(2) > INT32_MAX || !out.is_contiguous()) return false;
  constexpr int kPackElems = 8;  // bf16 and f16
  if (!packed_rows(q, kPackElems) || !packed_rows(k, kPackElems) || !packed_rows(v, kPackElems) ||
      !aligned16(out.raw_data()))
    return false;
  if (out.numel() == 0) return true;
  DeviceGuard guard(be.device_index());
  dispatch_float("attention_short", q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (sizeof(T) == 2) {
      if (d == 64) launch_short<T, 64>(be, out, q, k, v, scale);
      if (d == 72) launch_short<T, 72>(be, out, q, k, v, scale);
    }
  });
  return true;
}

}  // namespace ditserve::cuda
