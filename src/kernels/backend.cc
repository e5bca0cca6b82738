#include "kernels/backend.h"

#include "kernels/cpu/cpu_backend.h"
#include "kernels/dispatch.h"

#ifdef DITSERVE_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ditserve {

bool built_with_cuda() {
#ifdef DITSERVE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef DITSERVE_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no GPU: report none
    return 0;
  }
  return count;
#else
  return 0;
#endif
}

std::unique_ptr<Backend> make_backend(Device device) {
  DITSERVE_CHECK(device.index >= 0, "device index must be >= 0, got ", device.str());
  if (device.is_cpu()) return std::make_unique<cpu::CpuBackend>(device.index);
  const int count = cuda_device_count();
  DITSERVE_CHECK(built_with_cuda(), "device ", device.str(),
                 ": this build of ditserve has no CUDA backend");
  DITSERVE_CHECK(device.index < count, "device ", device.str(), ": only ", count,
                 " CUDA device(s) present");
  DITSERVE_ON_CUDA(return std::make_unique<cuda::CudaBackend>(device.index));
}

}  // namespace ditserve
