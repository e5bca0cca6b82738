#pragma once
// Tensor: a strided view of a Storage on one device. Copying a Tensor copies the view,
// never the bytes (like torch.Tensor). Operations that compute live in kernels/;
// this header has only construction, metadata and views.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/allocator.h"
#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/storage.h"

namespace ditserve {

using Shape = std::vector<std::int64_t>;
std::string shape_str(const Shape& shape);  // "[2, 3, 4]"
std::int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;  // undefined: used for "no tensor" in optional arguments
  Tensor(std::shared_ptr<Storage> storage, DType dtype, Shape shape, Shape strides,
         std::int64_t offset = 0);

  // New contiguous tensor with uninitialised contents.
  static Tensor empty(const Shape& shape, DType dtype, const std::shared_ptr<Allocator>& allocator);
  // Host tensors (cpu:0) for tests, references and loading.
  static Tensor empty_host(const Shape& shape, DType dtype);
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const;
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t size(std::int64_t dim) const;    // negative dims count from the end
  std::int64_t stride(std::int64_t dim) const;
  std::int64_t numel() const { return shape_numel(shape_); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  std::int64_t offset() const { return offset_; }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  std::string describe() const;  // "bf16[2, 3] on cuda:0" for error messages

  // Address of element 0 of this view.
  void* raw_data() const;
  template <typename T> T* data() const { return static_cast<T*>(raw_data()); }

  // Views (share storage). All throw InvalidArgument on impossible requests.
  Tensor view(const Shape& shape) const;  // requires contiguous; one dim may be -1
  Tensor permute(const std::vector<std::int64_t>& dims) const;
  Tensor transpose(std::int64_t a, std::int64_t b) const;
  Tensor narrow(std::int64_t dim, std::int64_t start, std::int64_t length) const;
  Tensor select(std::int64_t dim, std::int64_t index) const;  // drops dim
  Tensor unsqueeze(std::int64_t dim) const;
  Tensor squeeze(std::int64_t dim) const;
  Tensor expand(const Shape& shape) const;  // broadcast size-1 dims with stride 0
  Tensor flatten(std::int64_t first, std::int64_t last) const;  // requires mergeable strides

  // Host tensors only: element read/write as f32 (converts 16-bit floats and integers).
  float item_f32(const std::vector<std::int64_t>& index) const;
  std::vector<float> to_vector_f32() const;  // any strides, host only

 private:
  std::int64_t wrap_dim(std::int64_t dim, std::int64_t ndim) const;

  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::f32;
  Shape shape_;
  Shape strides_;  // in elements
  std::int64_t offset_ = 0;  // in elements
};

// Broadcast shape of two shapes (numpy rules); throws naming both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b);
// Whether `from` broadcasts (numpy rules) to exactly `to`.
bool broadcasts_to(const Shape& from, const Shape& to);

}  // namespace ditserve
