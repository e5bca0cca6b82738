#include "tensor/storage.h"

namespace ditserve {

Storage::Storage(std::shared_ptr<Allocator> allocator, std::size_t bytes)
    : allocator_(std::move(allocator)), bytes_(bytes), device_(allocator_->device()) {
  data_ = allocator_->allocate(bytes);
}

Storage::Storage(void* data, std::size_t bytes, Device device, std::function<void()> release)
    : data_(data), bytes_(bytes), device_(device), release_(std::move(release)) {}

Storage::~Storage() {
  if (allocator_) allocator_->deallocate(data_, bytes_);
  if (release_) release_();
}

}  // namespace ditserve
