#pragma once
// The CUDA Backend: one GPU, one stream, the library handles bound to that stream, a
// workspace for cuBLASLt and cuDNN, and the plan caches of both libraries. Only CUDA
// translation units include this.

#include <cublasLt.h>
#include <cudnn.h>

#include <memory>

#include "kernels/backend.h"
#include "kernels/cuda/cudnn_graph.h"
#include "kernels/cuda/gemm_plan_cache.h"
#include "tensor/cuda/caching_allocator.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {

class CudaBackend final : public Backend {
 public:
  // GEMM tuning from the environment (GemmTuningOptions::from_env).
  explicit CudaBackend(int device);
  CudaBackend(int device, GemmTuningOptions gemm_tuning);
  ~CudaBackend() override;

  Device device() const override { return Device::cuda(device_); }
  const std::shared_ptr<Allocator>& allocator() const override { return allocator_; }
  void synchronize() override { stream_->synchronize(); }

  int device_index() const { return device_; }
  cudaStream_t stream() const { return stream_->get(); }
  cublasLtHandle_t cublaslt() const { return cublaslt_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  PoolStats pool_stats() const { return caching_->stats(); }
  // Scratch memory of at least `bytes`, valid until the next call (stream-ordered).
  void* workspace(std::size_t bytes);
  int multiprocessor_count() const { return sm_count_; }
  CudnnPlanCache& cudnn_plans() { return cudnn_plans_; }
  GemmPlanCache& gemm_plans() { return gemm_plans_; }

 private:
  int device_;
  std::shared_ptr<Stream> stream_;  // shared with the allocator: tensors may outlive us
  std::shared_ptr<CachingAllocator> caching_;
  std::shared_ptr<Allocator> allocator_;
  cublasLtHandle_t cublaslt_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  Tensor workspace_;
  CudnnPlanCache cudnn_plans_;
  GemmPlanCache gemm_plans_;
  int sm_count_ = 0;
};

// Downcast for op dispatch; throws if `be` is not a CUDA backend.
CudaBackend& as_cuda(Backend& be);

}  // namespace ditserve::cuda
