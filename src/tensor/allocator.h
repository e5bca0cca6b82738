#pragma once
#include <cstddef>
#include <memory>

#include "tensor/device.h"

namespace ditserve {

// Hands out device memory. Implementations: the host allocator below, and the CUDA
// stream-ordered caching allocator (tensor/cuda/). Thread-safety is per implementation.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;
  // Returns memory aligned to at least 256 bytes; throws Error when out of memory.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr, std::size_t bytes) = 0;
};

// 256-byte aligned host memory for CPU device `device`. Stateless and thread-safe.
std::shared_ptr<Allocator> make_host_allocator(Device device = Device::cpu());

}  // namespace ditserve
