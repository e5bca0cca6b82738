#include "kernels/copy.h"

#include "kernels/captured_work.h"

#include "kernels/cpu/copy.h"
#include "kernels/dispatch.h"

#ifdef DITSERVE_WITH_CUDA
#include "tensor/cuda/cuda_check.h"
#endif

namespace ditserve {
void copy_into(Backend& be, const Tensor& dst, const Tensor& src) {
  detail::check_on_backend("copy_into", "dst", be, dst);
  detail::check_on_backend("copy_into", "src", be, src);
  detail::check_same_dtype("copy_into", dst, src);
  DITSERVE_CHECK(broadcasts_to(src.shape(), dst.shape()), "copy_into: src ", src.describe(),
                 " does not broadcast to dst ", dst.describe());
  const Tensor expanded = src.expand(dst.shape());
  if (be.device().is_cpu()) {
    cpu::copy_strided(dst, expanded);
  } else {
    DITSERVE_ON_CUDA(cuda::copy_strided(cuda::as_cuda(be), dst, expanded));
  }
}

Tensor contiguous(Backend& be, const Tensor& x) {
  detail::check_on_backend("contiguous", "x", be, x);
  if (x.is_contiguous()) return x;
  Tensor out = be.empty(x.shape(), x.dtype());
  copy_into(be, out, x);
  return out;
}

Tensor cast(Backend& be, const Tensor& x, DType dtype) {
  detail::check_on_backend("cast", "x", be, x);
  const Tensor src = contiguous(be, x);
  Tensor out = be.empty(x.shape(), dtype);
  if (be.device().is_cpu()) {
    cpu::cast(out, src);
  } else {
    DITSERVE_ON_CUDA(cuda::cast(cuda::as_cuda(be), out, src));
  }
  return out;
}

Tensor transfer(Backend& from, const Tensor& src, Backend& to) {
  detail::check_on_backend("transfer", "src", from, src);
  // Host memory in a graph would be read (or written) at capture time only, and the CUDA
  // path waits for the device: a captured model must have uploaded its tables before.
  DITSERVE_CHECK(!((is_capturing(from) || is_capturing(to)) &&
                   (from.device().is_cpu() || to.device().is_cpu())),
                 "transfer from ", from.device().str(), " to ", to.device().str(),
                 " inside a capture (kernels/captured_work.h): host memory cannot be part of "
                 "captured work");
  const Tensor packed = contiguous(from, src);
  Tensor out = to.empty(src.shape(), src.dtype());
  if (out.nbytes() == 0) return out;
  if (from.device().is_cpu() && to.device().is_cpu()) {
    cpu::copy_strided(out, packed);
    return out;
  }
#ifdef DITSERVE_WITH_CUDA
  if (to.device().is_cuda() && from.device().is_cpu()) {
    auto& dst = cuda::as_cuda(to);
    cuda::DeviceGuard guard(dst.device_index());
    DITSERVE_CUDA_CHECK(cudaMemcpyAsync(out.raw_data(), packed.raw_data(), out.nbytes(),
                                        cudaMemcpyHostToDevice, dst.stream()));
    // Pageable host memory: the copy has consumed `packed` once the stream reaches here.
    dst.synchronize();
  } else if (from.device().is_cuda() && to.device().is_cpu()) {
    auto& source = cuda::as_cuda(from);
    cuda::DeviceGuard guard(source.device_index());
    DITSERVE_CUDA_CHECK(cudaMemcpyAsync(out.raw_data(), packed.raw_data(), out.nbytes(),
                                        cudaMemcpyDeviceToHost, source.stream()));
    source.synchronize();
  } else {
    // GPU to GPU: the copy runs on the source's stream (which orders the producer), and
    // the destination's stream waits for it.
    auto& source = cuda::as_cuda(from);
    auto& dst = cuda::as_cuda(to);
    cuda::wait_for(source.stream(), dst.device_index(), dst.stream());  // out is allocated
    DITSERVE_CUDA_CHECK(cudaMemcpyPeerAsync(out.raw_data(), dst.device_index(), packed.raw_data(),
                                            source.device_index(), out.nbytes(), source.stream()));
    cuda::wait_for(dst.stream(), source.device_index(), source.stream());
    // `packed` may be a temporary of the source's stream: it is freed in that stream's
    // order, after the copy. `out` belongs to dst's stream, which now waits for the copy.
  }
  return out;
#else
  throw Error("transfer between " + from.device().str() + " and " + to.device().str() +
              ": this build of ditserve has no CUDA backend");
#endif
}

Tensor concat(Backend& be, const std::vector<Tensor>& parts, std::int64_t dim) {
  DITSERVE_CHECK(!parts.empty(), "concat: no tensors given");
  const Tensor& first = parts.front();
  detail::check_on_backend("concat", "parts[0]", be, first);
  const std::int64_t ndim = first.dim();
  if (dim < 0) dim += ndim;
  DITSERVE_CHECK(dim >= 0 && dim < ndim, "concat: dim out of range for ", first.describe());
  Shape shape = first.shape();
  shape[dim] = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const Tensor& p = parts[i];
    detail::check_on_backend("concat", "a part", be, p);
    detail::check_same_dtype("concat", first, p);
    DITSERVE_CHECK(p.dim() == ndim, "concat: part ", i, " is ", p.describe(),
                   ", rank differs from ", first.describe());
    for (std::int64_t d = 0; d < ndim; ++d) {
      DITSERVE_CHECK(d == dim || p.size(d) == first.size(d), "concat: part ", i, " is ",
                     p.describe(), ", which does not match ", first.describe(),
                     " outside dim ", dim);
    }
    shape[dim] += p.size(dim);
  }
  Tensor out = be.empty(shape, first.dtype());
  std::int64_t start = 0;
  for (const Tensor& p : parts) {
    copy_into(be, out.narrow(dim, start, p.size(dim)), p);
    start += p.size(dim);
  }
  return out;
}

}  // namespace ditserve
