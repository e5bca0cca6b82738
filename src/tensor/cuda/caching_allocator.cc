#include "tensor/cuda/caching_allocator.h"

#include <cstdint>

#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {

CachingAllocator::CachingAllocator(int device, std::shared_ptr<const Stream> stream)
    : device_(device), stream_(std::move(stream)) {
  DITSERVE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, device));
  std::uint64_t keep_everything = UINT64_MAX;
  DITSERVE_CUDA_CHECK(
      cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_everything));
}

void* CachingAllocator::allocate(std::size_t bytes) {
  DeviceGuard guard(device_);
  void* ptr = nullptr;
  const cudaError_t status = cudaMallocFromPoolAsync(&ptr, bytes == 0 ? 256 : bytes, pool_, stream_->get());
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw Error("out of GPU memory on cuda:" + std::to_string(device_) + " allocating " +
                std::to_string(bytes) + " bytes (" + cudaGetErrorString(status) + ")");
  }
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, std::size_t) {
  // Called from destructors: never throws (the runtime may be unloading at exit).
  if (cudaSetDevice(device_) != cudaSuccess || cudaFreeAsync(ptr, stream_->get()) != cudaSuccess) {
    cudaGetLastError();
  }
}

PoolStats CachingAllocator::stats() const {
  PoolStats stats;
  std::uint64_t value = 0;
  DITSERVE_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemCurrent, &value));
  stats.reserved_bytes = value;
  DITSERVE_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemCurrent, &value));
  stats.used_bytes = value;
  DITSERVE_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemHigh, &value));
  stats.reserved_high_bytes = value;
  return stats;
}

}  // namespace ditserve::cuda
