#pragma once
// Helpers shared by the op dispatchers (kernels/*.cc): argument checks that name the op
// and the tensor, and the CUDA branch that a CPU-only build compiles out.

#include <string_view>

#include "kernels/backend.h"
#include "tensor/error.h"

#ifdef DITSERVE_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/library_ops.h"
#define DITSERVE_ON_CUDA(...) __VA_ARGS__
#else
#define DITSERVE_ON_CUDA(...) \
  throw ::ditserve::Error("this build of ditserve has no CUDA backend")
#endif

namespace ditserve::detail {

// Throws naming `op` and `what` unless t is defined and lives on be's device.
void check_on_backend(std::string_view op, std::string_view what, const Backend& be,
                      const Tensor& t);
// CPU kernels compute in f32 only (DESIGN: f32 on CPU, bf16 storage on CUDA).
void check_float(std::string_view op, std::string_view what, const Backend& be, const Tensor& t);
void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b);

}  // namespace ditserve::detail
