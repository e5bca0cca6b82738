#include "tensor/allocator.h"

#include <cstdlib>
#include <new>
#include <string>

#include "tensor/error.h"

namespace ditserve {
namespace {

class HostAllocator final : public Allocator {
 public:
  explicit HostAllocator(Device device) : device_(device) {}
  Device device() const override { return device_; }
  void* allocate(std::size_t bytes) override {
    constexpr std::size_t kAlign = 256;
    const std::size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    void* ptr = std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
    if (ptr == nullptr) {
      throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes on " +
                  device_.str());
    }
    return ptr;
  }
  void deallocate(void* ptr, std::size_t) override { std::free(ptr); }

 private:
  const Device device_;
};

}  // namespace

std::shared_ptr<Allocator> make_host_allocator(Device device) {
  DITSERVE_CHECK(device.is_cpu(), "host allocator needs a cpu device, got ", device.str());
  return std::make_shared<HostAllocator>(device);
}

}  // namespace ditserve
