#pragma once
// Device memory for one (GPU, stream): a CUDA stream-ordered memory pool whose release
// threshold is unlimited, so freed blocks stay cached in the pool and steady-state
// allocation never reaches cudaMalloc. Blocks are freed in stream order: memory freed
// by a tensor may be reused by later work on the same stream at once.
// REQUIRES: tensors from this allocator are used only on its stream, or the user orders
// other streams after it with events before the tensor is released. The allocator shares
// ownership of the stream, so tensors may outlive the Backend that made them.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>

#include "tensor/allocator.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {

struct PoolStats {
  std::size_t reserved_bytes = 0;  // held by the pool (cached + in use)
  std::size_t used_bytes = 0;      // handed out and not yet freed
  std::size_t reserved_high_bytes = 0;
};

class CachingAllocator final : public Allocator {
 public:
  CachingAllocator(int device, std::shared_ptr<const Stream> stream);
  Device device() const override { return Device::cuda(device_); }
  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes) override;
  PoolStats stats() const;

 private:
  int device_;
  std::shared_ptr<const Stream> stream_;
  cudaMemPool_t pool_ = nullptr;
};

}  // namespace ditserve::cuda
