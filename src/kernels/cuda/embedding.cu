// Embedding gather and the sinusoidal timestep embedding.

#include <cstdint>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_util.cuh"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

// One block per id (grid-stride); an id outside [0, vocab) yields a zero row.
template <typename T>
__global__ void embedding_kernel(T* out, const T* table, const void* ids, bool ids64,
                                 std::int64_t n_ids, std::int64_t vocab, std::int64_t c,
                                 bool vec) {
  constexpr int P = kPack<T>;
  const std::int64_t units = vec ? c / P : c;
  for (std::int64_t row = blockIdx.x; row < n_ids; row += gridDim.x) {
    const std::int64_t id = ids64 ? static_cast<const std::int64_t*>(ids)[row]
                                  : static_cast<const std::int32_t*>(ids)[row];
    const bool valid = id >= 0 && id < vocab;
    const T* src = table + (valid ? id : 0) * c;
    T* dst = out + row * c;
    for (std::int64_t u = threadIdx.x; u < units; u += blockDim.x) {
      if (vec) {
        Pack<T> p;
        if (valid) {
          p = reinterpret_cast<const Pack<T>*>(src)[u];
        } else {
#pragma unroll
          for (int k = 0; k < P; ++k) p.v[k] = from_f32<T>(0.0f);
        }
        reinterpret_cast<Pack<T>*>(dst)[u] = p;
      } else {
        dst[u] = valid ? src[u] : from_f32<T>(0.0f);
      }
    }
  }
}

// Same arithmetic as the CPU backend: f_i rounded to f32, the f32 product t * f_i, then
// cos/sin in double.
__global__ void timestep_kernel(float* out, const float* t, std::int64_t batch, int dim,
                                bool cos_first, float max_period) {
  const int half = dim / 2;
  const std::int64_t total = batch * half;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (std::int64_t idx = first; idx < total; idx += step) {
    const std::int64_t b = idx / half;
    const int i = static_cast<int>(idx - b * half);
    const float freq = static_cast<float>(
        exp(-log(static_cast<double>(max_period)) * i / static_cast<double>(half)));
    const float arg = t[b] * freq;
    const float c = static_cast<float>(cos(static_cast<double>(arg)));
    const float s = static_cast<float>(sin(static_cast<double>(arg)));
    float* row = out + b * dim;
    row[i] = cos_first ? c : s;
    row[half + i] = cos_first ? s : c;
  }
  if (dim % 2 == 1) {
    for (std::int64_t b = first; b < batch; b += step) out[b * dim + dim - 1] = 0.0f;
  }
}

}  // namespace

void embedding(CudaBackend& be, const Tensor& out, const Tensor& table, const Tensor& ids) {
  constexpr std::string_view op = "embedding";
  DITSERVE_CHECK(table.dim() == 2 && table.is_contiguous(), op, ": table is ",
                 table.describe(), "; expected contiguous [V, C]");
  DITSERVE_CHECK((ids.dtype() == DType::i32 || ids.dtype() == DType::i64) && ids.is_contiguous(),
                 op, ": ids is ", ids.describe(), "; expected contiguous i32 or i64");
  const std::int64_t c = table.size(1);
  DITSERVE_CHECK(out.is_contiguous() && out.dtype() == table.dtype() &&
                     out.shape() == Shape({ids.numel(), c}),
                 op, ": out is ", out.describe(), "; expected contiguous [", ids.numel(), ", ",
                 c, "] of the table's dtype");
  if (out.numel() == 0) return;
  DeviceGuard guard(be.device_index());
  dispatch_float(op, table.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const bool vec =
        c % kPack<T> == 0 && aligned16(out.raw_data()) && aligned16(table.raw_data());
    const std::int64_t units = vec ? c / kPack<T> : c;
    const int threads = round_up(static_cast<int>(std::min<std::int64_t>(units, 256)), 32);
    const unsigned grid = static_cast<unsigned>(std::min(ids.numel(), kMaxGrid));
    embedding_kernel<T><<<grid, threads, 0, be.stream()>>>(
        out.data<T>(), table.data<const T>(), ids.raw_data(), ids.dtype() == DType::i64,
        ids.numel(), table.size(0), c, vec);
    DITSERVE_CUDA_CHECK_LAUNCH();
  });
}

void timestep_embedding(CudaBackend& be, const Tensor& out, const Tensor& t, int dim,
                        bool cos_first, float max_period) {
  constexpr std::string_view op = "timestep_embedding";
  DITSERVE_CHECK(t.dtype() == DType::f32 && t.dim() == 1 && t.is_contiguous(), op, ": t is ",
                 t.describe(), "; expected contiguous f32 [B]");
  DITSERVE_CHECK(dim > 0 && out.dtype() == DType::f32 && out.is_contiguous() &&
                     out.shape() == Shape({t.size(0), dim}),
                 op, ": out is ", out.describe(), "; expected contiguous f32 [", t.size(0), ", ",
                 dim, "]");
  const std::int64_t batch = t.size(0);
  if (batch == 0) return;
  DeviceGuard guard(be.device_index());
  const std::int64_t work = std::max<std::int64_t>(batch * (dim / 2), batch);
  timestep_kernel<<<grid_for(work, 256, be.multiprocessor_count()), 256, 0, be.stream()>>>(
      out.data<float>(), t.data<const float>(), batch, dim, cos_first, max_period);
  DITSERVE_CUDA_CHECK_LAUNCH();
}

}  // namespace ditserve::cuda
