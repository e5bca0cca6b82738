#pragma once
// Turns CUDA runtime status codes into ditserve::Error with the call and location.

#include <cuda_runtime_api.h>

#include <string>

#include "tensor/error.h"

namespace ditserve::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line);

}  // namespace ditserve::cuda

#define DITSERVE_CUDA_CHECK(call)                                                  \
  do {                                                                             \
    const cudaError_t ditserve_status_ = (call);                                   \
    if (ditserve_status_ != cudaSuccess)                                           \
      ::ditserve::cuda::throw_cuda_error(ditserve_status_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports launch-configuration errors at the launch site.
#define DITSERVE_CUDA_CHECK_LAUNCH() DITSERVE_CUDA_CHECK(cudaGetLastError())
