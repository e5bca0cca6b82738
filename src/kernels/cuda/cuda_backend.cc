#include "kernels/cuda/cuda_backend.h"

#include "kernels/captured_work.h"
#include "tensor/cuda/cuda_check.h"

namespace ditserve::cuda {
namespace {

void check_cudnn(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) {
    throw Error(std::string("cuDNN: ") + what + " failed: " + cudnnGetErrorString(status));
  }
}

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw Error(std::string("cuBLASLt: ") + what + " failed with status " +
                std::to_string(static_cast<int>(status)));
  }
}

}  // namespace

CudaBackend::CudaBackend(int device) : CudaBackend(device, GemmTuningOptions::from_env()) {}

CudaBackend::CudaBackend(int device, GemmTuningOptions gemm_tuning)
    : device_(device),
      stream_(std::make_shared<Stream>(device)),
      caching_(std::make_shared<CachingAllocator>(device, stream_)),
      allocator_(caching_),
      gemm_plans_(gemm_tuning) {
  DeviceGuard guard(device_);
  check_cublas(cublasLtCreate(&cublaslt_), "cublasLtCreate");
  check_cudnn(cudnnCreate(&cudnn_), "cudnnCreate");
  check_cudnn(cudnnSetStream(cudnn_, stream_->get()), "cudnnSetStream");
  DITSERVE_CUDA_CHECK(
      cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_));
}

CudaBackend::~CudaBackend() {
  // No DeviceGuard: it throws, and destructors may run while the runtime unloads.
  if (cudaSetDevice(device_) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  cudaStreamSynchronize(stream_->get());
  workspace_ = Tensor();
  if (cudnn_ != nullptr) cudnnDestroy(cudnn_);
  if (cublaslt_ != nullptr) cublasLtDestroy(cublaslt_);
}

void* CudaBackend::workspace(std::size_t bytes) {
  const bool grows = !workspace_.defined() || workspace_.nbytes() < bytes;
  if (is_capturing(*this)) {
    // A buffer allocated inside a capture belongs to the graph and is not valid outside
    // it; the current one must outlive every graph whose kernels were given its address.
    DITSERVE_CHECK(!grows, "cuda:", device_, ": the workspace would grow to ", bytes,
                   " bytes inside a CUDA graph capture; run the work once eagerly first");
    retain_for_capture(*this, workspace_);
  }
  if (grows) {
    workspace_ = Tensor();  // stream-ordered free: later work may reuse it at once
    const std::size_t rounded = std::max<std::size_t>(bytes, std::size_t{32} << 20);
    workspace_ = empty({static_cast<std::int64_t>(rounded)}, DType::u8);
  }
  return workspace_.raw_data();
}

CudaBackend& as_cuda(Backend& be) {
  auto* cuda = dynamic_cast<CudaBackend*>(&be);
  DITSERVE_CHECK(cuda != nullptr, "backend on ", be.device().str(), " is not a CUDA backend");
  return *cuda;
}

}  // namespace ditserve::cuda
