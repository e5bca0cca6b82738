#pragma once
// A Backend is one device plus what running ops on it needs: its allocator and, for
// CUDA, a stream, library handles and a workspace. Ops (the other headers of kernels/)
// take a Backend& and queue work on it; outputs are allocated from its allocator.
// REQUIRES: one thread drives a Backend at a time. On CUDA, work is asynchronous
// (stream-ordered); synchronize() or a transfer to the host waits for it.

#include <memory>

#include "tensor/tensor.h"

namespace ditserve {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual const std::shared_ptr<Allocator>& allocator() const = 0;
  // Blocks until all work queued on this backend has finished.
  virtual void synchronize() = 0;

  Tensor empty(const Shape& shape, DType dtype) const {
    return Tensor::empty(shape, dtype, allocator());
  }
};

// Throws Error if the device does not exist or the CUDA backend was not built.
std::unique_ptr<Backend> make_backend(Device device);

// Number of CUDA GPUs usable by this build (0 without the CUDA backend or a GPU).
int cuda_device_count();
bool built_with_cuda();

}  // namespace ditserve
