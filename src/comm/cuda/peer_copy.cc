#include "comm/cuda/peer_copy.h"

#include <cstddef>
#include <optional>

#include "kernels/copy.h"
#include "kernels/cuda/cuda_backend.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

// A strided copy as copy-engine work: `count` 2-D copies (height rows of width bytes, rows
// `src_pitch`/`dst_pitch` apart), the i-th at the outer offsets of index i.
struct PitchedPlan {
  std::size_t width = 0, height = 1, src_pitch = 0, dst_pitch = 0;
  struct Outer { std::int64_t size, src_stride, dst_stride; };  // strides in bytes
  std::vector<Outer> outer;
  std::int64_t count = 1;
};

// Copy-engine copies serve views whose innermost (merged) dim is contiguous on both sides;
// more than this many 2-D pieces costs more in launches than a staging pass.
constexpr std::int64_t kMaxPitchedCopies = 64;

std::optional<PitchedPlan> plan_pitched(const Tensor& src, const Tensor& dst) {
  const auto e = static_cast<std::int64_t>(dtype_size(src.dtype()));
  struct Dim { std::int64_t size, sa, sb; };
  std::vector<Dim> dims;  // innermost first, size-1 dims dropped, mergeable dims merged
  for (std::int64_t d = src.dim() - 1; d >= 0; --d) {
    const Dim next{src.size(d), src.strides()[static_cast<std::size_t>(d)],
                   dst.strides()[static_cast<std::size_t>(d)]};
    if (next.size == 1) continue;
    if (!dims.empty() && next.sa == dims.back().size * dims.back().sa &&
        next.sb == dims.back().size * dims.back().sb) {
      dims.back().size *= next.size;
      continue;
    }
    dims.push_back(next);
  }
  PitchedPlan plan;
  if (dims.empty()) {
    plan.width = static_cast<std::size_t>(e);
    return plan;
  }
  if (dims[0].sa != 1 || dims[0].sb != 1) return std::nullopt;
  plan.width = static_cast<std::size_t>(dims[0].size * e);
  if (dims.size() >= 2) {
    // Pitches below the width would overlap rows; huge pitches exceed the 2-D API.
    constexpr std::int64_t kMaxPitch = std::int64_t{1} << 31;
    const std::int64_t sp = dims[1].sa * e, dp = dims[1].sb * e;
    if (sp < dims[0].size * e || dp < dims[0].size * e || sp >= kMaxPitch || dp >= kMaxPitch) {
      return std::nullopt;
    }
    plan.height = static_cast<std::size_t>(dims[1].size);
    plan.src_pitch = static_cast<std::size_t>(sp);
    plan.dst_pitch = static_cast<std::size_t>(dp);
  } else {
    plan.src_pitch = plan.dst_pitch = plan.width;
  }
  for (std::size_t i = 2; i < dims.size(); ++i) {
    plan.outer.push_back({dims[i].size, dims[i].sa * e, dims[i].sb * e});
    plan.count *= dims[i].size;
  }
  if (plan.count > kMaxPitchedCopies) return std::nullopt;
  return plan;
}

void run_pitched(const PitchedPlan& plan, const Tensor& src, int src_device, const Tensor& dst,
                 int dst_device, cudaStream_t stream) {
  auto* const s0 = static_cast<std::byte*>(src.raw_data());
  auto* const d0 = static_cast<std::byte*>(dst.raw_data());
  for (std::int64_t i = 0; i < plan.count; ++i) {
    std::int64_t rest = i, so = 0, dof = 0;
    for (const auto& o : plan.outer) {
      so += (rest % o.size) * o.src_stride;
      dof += (rest % o.size) * o.dst_stride;
      rest /= o.size;
    }
    cudaMemcpy3DPeerParms p{};
    p.srcPtr = cudaPitchedPtr{s0 + so, plan.src_pitch, plan.width, plan.height};
    p.srcDevice = src_device;
    p.dstPtr = cudaPitchedPtr{d0 + dof, plan.dst_pitch, plan.width, plan.height};
    p.dstDevice = dst_device;
    p.extent = cudaExtent{plan.width, plan.height, 1};
    DITSERVE_CUDA_CHECK(cudaMemcpy3DPeerAsync(&p, stream));
  }
}

}  // namespace

void enable_peer_access(const std::vector<Backend*>& devices) {
  for (Backend* a : devices) {
    if (!a->device().is_cuda()) continue;
    const int from = as_cuda(*a).device_index();
    DeviceGuard guard(from);
    for (Backend* b : devices) {
      if (!b->device().is_cuda()) continue;
      const int to = as_cuda(*b).device_index();
      if (to == from) continue;
      int can = 0;
      DITSERVE_CUDA_CHECK(cudaDeviceCanAccessPeer(&can, from, to));
      if (!can) continue;
      const cudaError_t status = cudaDeviceEnablePeerAccess(to, 0);
      if (status == cudaErrorPeerAccessAlreadyEnabled) {
        (void)cudaGetLastError();  // reset the last-error state, so later checks do not see it
      } else {
        DITSERVE_CUDA_CHECK(status);
      }
      // Tensors live in each device's default stream-ordered pool (CachingAllocator), whose
      // memory peer access alone does not open: without this grant the driver stages peer
      // copies through the host at a fraction of NVLink's bandwidth.
      cudaMemPool_t pool = nullptr;
      DITSERVE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, to));
      cudaMemAccessDesc access{};
      access.location.type = cudaMemLocationTypeDevice;
      access.location.id = from;
      access.flags = cudaMemAccessFlagsProtReadWrite;
      DITSERVE_CUDA_CHECK(cudaMemPoolSetAccess(pool, &access, 1));
    }
  }
}

void fabric_copy(Backend& from, const Tensor& src, Backend& to, const Tensor& dst) {
  if (dst.numel() == 0) return;
  if (!(from.device().is_cuda() && to.device().is_cuda())) {
    // Host <-> GPU: transfer() packs and orders the copy; then lay it out into dst.
    copy_into(to, dst, transfer(from, src, to));
    return;
  }
  auto& source = as_cuda(from);
  auto& target = as_cuda(to);
  const bool same = &from == &to;
  // Views whose inner dims are contiguous go straight through the copy engines (pitched
  // copies); any other layout is packed on the source, copied, and re-laid out on dst.
  const std::optional<PitchedPlan> plan = plan_pitched(src, dst);
  if (same && !plan) {
    copy_into(to, dst, src);
    return;
  }
  const Tensor packed = plan ? src : contiguous(from, src);
  const Tensor landing = plan || dst.is_contiguous() ? dst : to.empty(dst.shape(), dst.dtype());
  if (!same) {
    // dst's stream's prior work (its allocation, earlier readers) completes before the copy.
    wait_for(source.stream(), target.device_index(), target.stream());
  }
  {
    DeviceGuard guard(source.device_index());
    if (plan) {
      run_pitched(*plan, packed, source.device_index(), landing, target.device_index(),
                  source.stream());
    } else {
      DITSERVE_CUDA_CHECK(cudaMemcpyPeerAsync(landing.raw_data(), target.device_index(),
                                              packed.raw_data(), source.device_index(),
                                              landing.nbytes(), source.stream()));
    }
  }
  if (!same) wait_for(target.stream(), source.device_index(), source.stream());
  if (!plan && !dst.is_contiguous()) copy_into(to, dst, landing);
}

}  // namespace ditserve::cuda
