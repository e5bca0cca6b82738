#pragma once
// The devices of a multi-device test: CPU devices cpu:0 .. cpu:count-1, each with its own
// backend, and the fabric over them.

#include <cstddef>
#include <memory>
#include <vector>

#include "comm/fabric.h"
#include "kernels/backend.h"

namespace ditserve::testing {

class CpuDevices {
 public:
  explicit CpuDevices(int count) {
    std::vector<Backend*> devices;
    for (int r = 0; r < count; ++r) {
      backends_.push_back(make_backend(Device::cpu(r)));
      devices.push_back(backends_.back().get());
    }
    fabric_ = std::make_unique<Fabric>(devices);
  }

  Backend& operator[](std::size_t rank) const { return *backends_.at(rank); }
  Fabric& fabric() const { return *fabric_; }

 private:
  std::vector<std::unique_ptr<Backend>> backends_;
  std::unique_ptr<Fabric> fabric_;  // refers to backends_: declared after, destroyed first
};

}  // namespace ditserve::testing
