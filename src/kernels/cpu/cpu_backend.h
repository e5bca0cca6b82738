#pragma once
// The CPU Backend: host memory, synchronous execution. Several CPU backends with
// different indices stand in for several devices in tests and on GPU-less machines.

#include "kernels/backend.h"

namespace ditserve::cpu {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int index) : device_(Device::cpu(index)), allocator_(make_host_allocator(device_)) {}
  Device device() const override { return device_; }
  const std::shared_ptr<Allocator>& allocator() const override { return allocator_; }
  void synchronize() override {}

 private:
  Device device_;
  std::shared_ptr<Allocator> allocator_;
};

}  // namespace ditserve::cpu
