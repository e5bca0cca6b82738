#pragma once
#include <cstddef>
#include <functional>
#include <memory>

#include "tensor/allocator.h"
#include "tensor/device.h"

namespace ditserve {

// A block of bytes on one device, shared by every Tensor view of it. Either owned
// (returned to its allocator on destruction) or borrowed (e.g. an mmap'ed checkpoint),
// in which case `release` runs on destruction.
class Storage {
 public:
  Storage(std::shared_ptr<Allocator> allocator, std::size_t bytes);
  Storage(void* data, std::size_t bytes, Device device, std::function<void()> release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  std::shared_ptr<Allocator> allocator_;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
  std::function<void()> release_;
};

}  // namespace ditserve
