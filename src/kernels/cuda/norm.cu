// LayerNorm, RMSNorm and adaLN modulation (a warp or a block per row, two-pass statistics
// from a shared-memory copy of the row), and GroupNorm of channels-last tensors (Welford partial
// statistics over chunks of positions, merged per (n, group), then a normalising pass).

#include <cstdint>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

struct Moments {
  float mean;
  float rstd;
};

// Mean and 1/sqrt(var + eps) of a row; the values land in the slot's cache if it has one.
template <typename T, bool kWarp>
__device__ __forceinline__ Moments row_moments(const RowSlot& slot, const T* row, int c, bool vec,
                                               float eps, float* scratch) {
  float sum = 0.0f;
  row_load(slot, row, c, vec, [&](int, float v) { sum += v; });
  const float mean = row_sum<kWarp>(sum, scratch) / static_cast<float>(c);
  float sq = 0.0f;
  row_visit(slot, row, c, vec, [&](int, float v) {
    const float d = v - mean;
    sq += d * d;
  });
  const float var = row_sum<kWarp>(sq, scratch) / static_cast<float>(c);
  return {mean, 1.0f / sqrtf(var + eps)};
}

template <typename T, bool kWarp>
__global__ void layer_norm_kernel(T* out, const T* x, const T* weight, const T* bias,
                                  std::int64_t rows, int c, float eps, bool vec, bool cached) {
  extern __shared__ float row_cache[];
  __shared__ float scratch[32];
  const RowSlot slot = row_slot<kWarp>(cached ? row_cache : nullptr, c);
  for (std::int64_t r = slot.first; r < rows; r += slot.step) {
    const T* xr = x + r * c;
    const Moments m = row_moments<T, kWarp>(slot, xr, c, vec, eps, scratch);
    row_store(slot, out + r * c, xr, c, vec, [&](int j, float v) {
      float y = (v - m.mean) * m.rstd;
      if (weight != nullptr) y *= to_f32(weight[j]);
      if (bias != nullptr) y += to_f32(bias[j]);
      return y;
    });
  }
}

template <typename T, bool kWarp>
__global__ void rms_norm_kernel(T* out, const T* x, const T* weight, std::int64_t rows, int c,
                                float eps, bool vec, bool cached) {
  extern __shared__ float row_cache[];
  __shared__ float scratch[32];
  const RowSlot slot = row_slot<kWarp>(cached ? row_cache : nullptr, c);
  for (std::int64_t r = slot.first; r < rows; r += slot.step) {
    const T* xr = x + r * c;
    float sq = 0.0f;
    row_load(slot, xr, c, vec, [&](int, float v) { sq += v * v; });
    const float rstd = 1.0f / sqrtf(row_sum<kWarp>(sq, scratch) / static_cast<float>(c) + eps);
    row_store(slot, out + r * c, xr, c, vec, [&](int j, float v) {
      return weight != nullptr ? v * rstd * to_f32(weight[j]) : v * rstd;
    });
  }
}

// shift/scale rows are found through `ix` (leading dims); their last dim has stride
// shift_inner / scale_inner (1, or 0 when broadcast).
template <typename T, bool kWarp>
__global__ void modulate_kernel(T* out, const T* x, const T* shift, const T* scale,
                                StridedIndexer<2> ix, std::int64_t shift_inner,
                                std::int64_t scale_inner, std::int64_t rows, int c, float eps,
                                bool vec, bool cached) {
  extern __shared__ float row_cache[];
  __shared__ float scratch[32];
  const RowSlot slot = row_slot<kWarp>(cached ? row_cache : nullptr, c);
  for (std::int64_t r = slot.first; r < rows; r += slot.step) {
    const T* xr = x + r * c;
    std::int64_t off[2];
    ix.offsets(r, off);
    const T* sh = shift + off[0];
    const T* sc = scale + off[1];
    const Moments m = row_moments<T, kWarp>(slot, xr, c, vec, eps, scratch);
    row_store(slot, out + r * c, xr, c, vec, [&](int j, float v) {
      const float normed = (v - m.mean) * m.rstd;
      return normed * (1.0f + to_f32(sc[j * scale_inner])) + to_f32(sh[j * shift_inner]);
    });
  }
}

// The same with a row held in registers: kLanes lanes per row, kPacksPerLane packs each,
// C = kLanes * kPacksPerLane * kPack<T> exactly, consecutive lanes on consecutive packs.
// STDiT3's rows (1152 bf16 = 144 packs) split over a full warp as 4.5 packs per lane and
// staged through shared memory; here 16 lanes take 9 packs each, shift and scale are read
// as packs too, and the row crosses DRAM once each way.
template <typename T, int kLanes, int kPacksPerLane>
__global__ void __launch_bounds__(256)
    modulate_in_registers_kernel(T* __restrict__ out, const T* __restrict__ x,
                                 const T* __restrict__ shift, const T* __restrict__ scale,
                                 StridedIndexer<2> ix, std::int64_t rows, float eps) {
  constexpr int P = kPack<T>;
  constexpr int kC = kLanes * kPacksPerLane * P;
  static_assert(32 % kLanes == 0, "a row's lanes lie within one warp");
  const std::int64_t thread = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t r = thread / kLanes;
  if (r >= rows) return;  // a row's lanes leave together: the shuffles below stay in-row
  const int lane = static_cast<int>(thread % kLanes);
  const unsigned warp_lane = threadIdx.x & 31u;
  const unsigned row_mask =
      kLanes == 32 ? 0xffffffffu : ((1u << kLanes) - 1u) << (warp_lane / kLanes * kLanes);
  const T* xr = x + r * kC;
  float v[kPacksPerLane][P];
#pragma unroll
  for (int i = 0; i < kPacksPerLane; ++i) {
    const Pack<T> p = *reinterpret_cast<const Pack<T>*>(xr + (i * kLanes + lane) * P);
#pragma unroll
    for (int k = 0; k < P; ++k) v[i][k] = to_f32(p.v[k]);
  }
  auto row_total = [&](float s) {
#pragma unroll
    for (int o = kLanes / 2; o > 0; o >>= 1) s += __shfl_xor_sync(row_mask, s, o);
    return s;
  };
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kPacksPerLane; ++i)
#pragma unroll
    for (int k = 0; k < P; ++k) sum += v[i][k];
  const float mean = row_total(sum) / static_cast<float>(kC);
  float sq = 0.0f;
#pragma unroll
  for (int i = 0; i < kPacksPerLane; ++i)
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const float d = v[i][k] - mean;
      sq += d * d;
    }
  const float rstd = 1.0f / sqrtf(row_total(sq) / static_cast<float>(kC) + eps);
  std::int64_t off[2];
  ix.offsets(r, off);
  const T* sh = shift + off[0];
  const T* sc = scale + off[1];
  T* outr = out + r * kC;
#pragma unroll
  for (int i = 0; i < kPacksPerLane; ++i) {
    const int j = (i * kLanes + lane) * P;
    const Pack<T> shp = *reinterpret_cast<const Pack<T>*>(sh + j);
    const Pack<T> scp = *reinterpret_cast<const Pack<T>*>(sc + j);
    Pack<T> o;
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const float normed = (v[i][k] - mean) * rstd;
      o.v[k] = from_f32<T>(normed * (1.0f + to_f32(scp.v[k])) + to_f32(shp.v[k]));
    }
    *reinterpret_cast<Pack<T>*>(outr + j) = o;
  }
}

// ---- GroupNorm over x [N, S, C], G groups of cpg = C / G channels ----
// Block (chunk, n) covers positions [chunk * span, +span) of sample n for every group:
// thread t works on group gb + t % gpt at positions t / gpt, + ppb, ... so that a warp
// reads neighbouring groups of one position (contiguous memory). Each thread keeps a
// Welford state; the ppb states of a group are merged in shared memory and written as
// the chunk's (mean, M2).

struct Welford {
  float count = 0.0f;
  float mean = 0.0f;
  float m2 = 0.0f;
  __device__ __forceinline__ void add(float v) {
    count += 1.0f;
    const float delta = v - mean;
    mean += delta / count;
    m2 += delta * (v - mean);
  }
  __device__ __forceinline__ void merge(const Welford& o) {
    if (o.count == 0.0f) return;
    const float n = count + o.count;
    const float delta = o.mean - mean;
    const float fo = o.count / n;
    mean += delta * fo;
    m2 += o.m2 + delta * delta * count * fo;
    count = n;
  }
};

constexpr int kGroupThreads = 256;

template <typename T>
__global__ void group_stats_kernel(float2* partial, const T* x, std::int64_t s, int c, int groups,
                                   int cpg, int gpt, std::int64_t span) {
  __shared__ float counts[kGroupThreads], means[kGroupThreads], m2s[kGroupThreads];
  const int n = blockIdx.y;
  const int chunks = gridDim.x;
  const int chunk = blockIdx.x;
  const int ppb = kGroupThreads / gpt;
  const int lane_group = threadIdx.x % gpt;
  const int lane_pos = threadIdx.x / gpt;
  const std::int64_t p0 = chunk * span;
  const std::int64_t p1 = p0 + span < s ? p0 + span : s;
  const T* xn = x + static_cast<std::int64_t>(n) * s * c;
  for (int gb = 0; gb < groups; gb += gpt) {  // uniform trip count: barriers inside are safe
    const int g = gb + lane_group;
    Welford w;
    if (g < groups && lane_pos < ppb) {
      const T* base = xn + static_cast<std::int64_t>(g) * cpg;
      for (std::int64_t p = p0 + lane_pos; p < p1; p += ppb) {
        const T* v = base + p * c;
        for (int j = 0; j < cpg; ++j) w.add(to_f32(v[j]));
      }
    }
    counts[threadIdx.x] = w.count;
    means[threadIdx.x] = w.mean;
    m2s[threadIdx.x] = w.m2;
    __syncthreads();
    if (lane_pos == 0 && g < groups) {
      Welford total = w;
      for (int q = 1; q < ppb; ++q) {
        const int t = threadIdx.x + q * gpt;
        total.merge(Welford{counts[t], means[t], m2s[t]});
      }
      partial[(static_cast<std::int64_t>(n) * groups + g) * chunks + chunk] =
          make_float2(total.mean, total.m2);
    }
    __syncthreads();
  }
}

// Chan's merge of (count, mean, M2) states, in double.
struct Moments64 {
  double count = 0.0, mean = 0.0, m2 = 0.0;
  __device__ __forceinline__ void merge(double nb, double mean_b, double m2_b) {
    if (nb == 0.0) return;
    const double n = count + nb;
    const double delta = mean_b - mean;
    mean += delta * nb / n;
    m2 += m2_b + delta * delta * count * nb / n;
    count = n;
  }
};

// One warp per (n, g): lanes merge strided subsets of the chunks' (mean, M2), then the
// lanes' states are merged by a butterfly; lane 0 writes (mean, rstd).
__global__ void group_finalize_kernel(float2* stats, const float2* partial, std::int64_t pairs,
                                      int chunks, std::int64_t s, int cpg, std::int64_t span,
                                      float eps) {
  const std::int64_t i =
      (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (i >= pairs) return;  // whole warps leave together: blockDim.x is a multiple of 32
  Moments64 m;
  for (int k = lane; k < chunks; k += 32) {
    const std::int64_t p0 = k * span;
    const std::int64_t len = p0 >= s ? 0 : (p0 + span < s ? span : s - p0);
    const float2 pm = partial[i * chunks + k];
    m.merge(static_cast<double>(len) * cpg, pm.x, pm.y);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const double nb = __shfl_xor_sync(0xffffffffu, m.count, o);
    const double mb = __shfl_xor_sync(0xffffffffu, m.mean, o);
    const double m2b = __shfl_xor_sync(0xffffffffu, m.m2, o);
    m.merge(nb, mb, m2b);
  }
  if (lane == 0) {
    const double var = m.count > 0.0 ? m.m2 / m.count : 0.0;
    stats[i] = make_float2(static_cast<float>(m.mean),
                           static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps))));
  }
}

template <typename T>
__global__ void group_apply_kernel(T* out, const T* x, const float2* stats, const T* weight,
                                   const T* bias, std::int64_t n_elems, std::int64_t s, int c,
                                   int groups, int cpg, bool vec) {
  constexpr int P = kPack<T>;
  const int width = vec ? P : 1;  // a pack never straddles a row: c % P == 0 when vec
  const std::int64_t units = n_elems / width;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t u = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       u < units; u += step) {
    const std::int64_t e0 = u * width;
    const std::int64_t row = e0 / c;
    const int c0 = static_cast<int>(e0 - row * c);
    const std::int64_t sample = row / s;
    const float2* st = stats + sample * groups;
    auto normed = [&](int ch, float v) {
      const float2 m = st[ch / cpg];
      return (v - m.x) * m.y * to_f32(weight[ch]) + to_f32(bias[ch]);
    };
    if (vec) {
      const Pack<T> in = *reinterpret_cast<const Pack<T>*>(x + e0);
      Pack<T> o;
#pragma unroll
      for (int k = 0; k < P; ++k) o.v[k] = from_f32<T>(normed(c0 + k, to_f32(in.v[k])));
      *reinterpret_cast<Pack<T>*>(out + e0) = o;
    } else {
      out[e0] = from_f32<T>(normed(c0, to_f32(x[e0])));
    }
  }
}

void check_rows(std::string_view op, const Tensor& out, const Tensor& x) {
  DITSERVE_CHECK(out.is_contiguous() && x.is_contiguous() && out.shape() == x.shape() &&
                     out.dtype() == x.dtype() && x.dim() >= 1,
                 op, ": expected contiguous out and x of one shape and dtype, got ",
                 out.describe(), " and ", x.describe());
  DITSERVE_CHECK(x.size(-1) <= INT32_MAX, op, ": last dim of ", x.describe(), " is too long");
}

void check_param(std::string_view op, std::string_view what, const Tensor& p, const Tensor& x) {
  if (!p.defined()) return;
  DITSERVE_CHECK(p.is_contiguous() && p.numel() == x.size(-1) && p.dtype() == x.dtype(), op,
                 ": ", what, " is ", p.describe(), "; expected contiguous [", x.size(-1),
                 "] of x's dtype");
}

// Launches modulate_in_registers_kernel when the row width is one it is built for (STDiT3's
// 1152 and Wan 1.3B's 1536, in 16-bit types) and every row, shift and scale is read in
// aligned packs; returns false, queuing nothing, otherwise.
template <typename T>
bool modulate_in_registers(CudaBackend& be, const Tensor& out, const Tensor& x,
                           const Tensor& shift, const Tensor& scale, const StridedIndexer<2>& ix,
                           std::int64_t rows, std::int64_t c, float eps) {
  if constexpr (sizeof(T) != 2) {
    return false;
  } else {
    constexpr int P = kPack<T>;
    if (shift.stride(-1) != 1 || scale.stride(-1) != 1) return false;
    for (const Tensor* t : {&out, &x, &shift, &scale}) {
      if (!aligned16(t->raw_data())) return false;
    }
    for (std::size_t d = 0; d + 1 < x.shape().size(); ++d) {
      if (shift.stride(static_cast<std::int64_t>(d)) % P != 0 ||
          scale.stride(static_cast<std::int64_t>(d)) % P != 0)
        return false;
    }
    constexpr int kThreads = 256;
    auto launch = [&](auto kernel, int lanes) {
      const std::int64_t blocks = (rows * lanes + kThreads - 1) / kThreads;
      kernel<<<static_cast<unsigned>(blocks), kThreads, 0, be.stream()>>>(
          out.data<T>(), x.data<const T>(), shift.data<const T>(), scale.data<const T>(), ix,
          rows, eps);
      DITSERVE_CUDA_CHECK_LAUNCH();
      return true;
    };
    if (rows * 32 / kThreads >= std::int64_t{1} << 31) return false;
    if (c == 16 * 9 * P) return launch(modulate_in_registers_kernel<T, 16, 9>, 16);
    if (c == 32 * 6 * P) return launch(modulate_in_registers_kernel<T, 32, 6>, 32);
    return false;
  }
}

}  // namespace

void layer_norm(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& weight,
                const Tensor& bias, float eps) {
  check_rows("layer_norm", out, x);
  check_param("layer_norm", "weight", weight, x);
  check_param("layer_norm", "bias", bias, x);
  if (x.numel() == 0) return;
  const std::int64_t c = x.size(-1), rows = x.numel() / c;
  DeviceGuard guard(be.device_index());
  dispatch_float("layer_norm", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const RowLaunch l = row_launch<T>(rows, c, {out.raw_data(), x.raw_data()});
    launch_rows(be.stream(), l, layer_norm_kernel<T, true>, layer_norm_kernel<T, false>,
                out.data<T>(), x.data<const T>(), ptr_or_null<T>(weight), ptr_or_null<T>(bias),
                rows, static_cast<int>(c), eps, l.vec, l.cache > 0);
    DITSERVE_CUDA_CHECK_LAUNCH();
  });
}

void rms_norm(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& weight,
              float eps) {
  check_rows("rms_norm", out, x);
  check_param("rms_norm", "weight", weight, x);
  if (x.numel() == 0) return;
  const std::int64_t c = x.size(-1), rows = x.numel() / c;
  DeviceGuard guard(be.device_index());
  dispatch_float("rms_norm", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const RowLaunch l = row_launch<T>(rows, c, {out.raw_data(), x.raw_data()});
    launch_rows(be.stream(), l, rms_norm_kernel<T, true>, rms_norm_kernel<T, false>,
                out.data<T>(), x.data<const T>(), ptr_or_null<T>(weight), rows,
                static_cast<int>(c), eps, l.vec, l.cache > 0);
    DITSERVE_CUDA_CHECK_LAUNCH();
  });
}

void modulate_layer_norm(CudaBackend& be, const Tensor& out, const Tensor& x,
                         const Tensor& shift, const Tensor& scale, float eps) {
  constexpr std::string_view op = "modulate_layer_norm";
  check_rows(op, out, x);
  for (const Tensor* p : {&shift, &scale}) {
    DITSERVE_CHECK(p->defined() && p->shape() == x.shape() && p->dtype() == x.dtype() &&
                       (p->stride(-1) == 0 || p->stride(-1) == 1 || x.size(-1) == 1),
                   op, ": shift/scale ", p->describe(), " is not x's shape ",
                   shape_str(x.shape()), " with a unit or zero stride on the last dim");
  }
  if (x.numel() == 0) return;
  const std::int64_t c = x.size(-1), rows = x.numel() / c;
  const Shape lead(x.shape().begin(), x.shape().end() - 1);
  const Shape shift_lead(shift.strides().begin(), shift.strides().end() - 1);
  const Shape scale_lead(scale.strides().begin(), scale.strides().end() - 1);
  const StridedIndexer<2> ix = make_indexer<2>(op, lead, {&shift_lead, &scale_lead});
  DeviceGuard guard(be.device_index());
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (modulate_in_registers<T>(be, out, x, shift, scale, ix, rows, c, eps)) return;
    const RowLaunch l = row_launch<T>(rows, c, {out.raw_data(), x.raw_data()});
    launch_rows(be.stream(), l, modulate_kernel<T, true>, modulate_kernel<T, false>,
                out.data<T>(), x.data<const T>(), shift.data<const T>(), scale.data<const T>(),
                ix, shift.stride(-1), scale.stride(-1), rows, static_cast<int>(c), eps, l.vec,
                l.cache > 0);
    DITSERVE_CUDA_CHECK_LAUNCH();
  });
}

void group_norm(CudaBackend& be, const Tensor& out, const Tensor& x, int groups,
                const Tensor& weight, const Tensor& bias, float eps) {
  constexpr std::string_view op = "group_norm";
  DITSERVE_CHECK(x.dim() == 3 && x.is_contiguous() && out.is_contiguous() &&
                     out.shape() == x.shape() && out.dtype() == x.dtype(),
                 op, ": expected contiguous out and x [N, S, C] of one dtype, got ",
                 out.describe(), " and ", x.describe());
  const std::int64_t n = x.size(0), s = x.size(1), c = x.size(2);
  DITSERVE_CHECK(groups > 0 && c % groups == 0 && c <= INT32_MAX, op, ": ", groups,
                 " groups do not divide the ", c, " channels of ", x.describe());
  DITSERVE_CHECK(weight.defined() && bias.defined(), op, ": weight and bias are required");
  check_param(op, "weight", weight, x);
  check_param(op, "bias", bias, x);
  DITSERVE_CHECK(n <= 65535, op, ": at most 65535 samples, got ", x.describe());
  if (x.numel() == 0) return;
  const int cpg = static_cast<int>(c / groups);
  const int gpt = std::min(groups, kGroupThreads);
  const int ppb = kGroupThreads / gpt;
  // Enough chunks for a few waves of blocks, each with some work per thread.
  const std::int64_t target_blocks = static_cast<std::int64_t>(be.multiprocessor_count()) * 8;
  const std::int64_t max_chunks = std::max<std::int64_t>(1, s / (static_cast<std::int64_t>(ppb) * 16));
  const std::int64_t chunks =
      std::clamp<std::int64_t>((target_blocks + n - 1) / n, 1, std::min<std::int64_t>(max_chunks, 65535));
  const std::int64_t span = (s + chunks - 1) / chunks;
  const std::int64_t pairs = n * groups;

  DeviceGuard guard(be.device_index());
  const Tensor partial = be.empty({pairs * chunks, 2}, DType::f32);
  const Tensor stats = be.empty({pairs, 2}, DType::f32);
  auto* partial_p = reinterpret_cast<float2*>(partial.data<float>());
  auto* stats_p = reinterpret_cast<float2*>(stats.data<float>());
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    group_stats_kernel<T><<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(n)),
                            kGroupThreads, 0, be.stream()>>>(
        partial_p, x.data<const T>(), s, static_cast<int>(c), groups, cpg, gpt, span);
    DITSERVE_CUDA_CHECK_LAUNCH();
    const unsigned finalize_grid = static_cast<unsigned>((pairs * 32 + 127) / 128);
    group_finalize_kernel<<<finalize_grid, 128, 0, be.stream()>>>(
        stats_p, partial_p, pairs, static_cast<int>(chunks), s, cpg, span, eps);
    DITSERVE_CUDA_CHECK_LAUNCH();
    const bool vec = c % kPack<T> == 0 && aligned16(out.raw_data()) && aligned16(x.raw_data());
    const std::int64_t units = vec ? x.numel() / kPack<T> : x.numel();
    group_apply_kernel<T><<<grid_for(units, 256, be.multiprocessor_count()), 256, 0,
                            be.stream()>>>(out.data<T>(), x.data<const T>(), stats_p,
                                           weight.data<const T>(), bias.data<const T>(),
                                           x.numel(), s, static_cast<int>(c), groups, cpg, vec);
    DITSERVE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ditserve::cuda
