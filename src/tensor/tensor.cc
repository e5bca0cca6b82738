#include "tensor/tensor.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <sstream>

#include "tensor/error.h"

namespace ditserve {

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

std::int64_t shape_numel(const Shape& shape) {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  std::int64_t s = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= std::max<std::int64_t>(shape[i], 1);
  }
  return strides;
}

Tensor::Tensor(std::shared_ptr<Storage> storage, DType dtype, Shape shape, Shape strides,
               std::int64_t offset)
    : storage_(std::move(storage)), dtype_(dtype), shape_(std::move(shape)),
      strides_(std::move(strides)), offset_(offset) {
  DITSERVE_CHECK(shape_.size() == strides_.size(), "tensor: shape ", shape_str(shape_),
                 " and strides ", shape_str(strides_), " differ in rank");
  for (auto d : shape_) DITSERVE_CHECK(d >= 0, "tensor: negative size in ", shape_str(shape_));
}

Tensor Tensor::empty(const Shape& shape, DType dtype, const std::shared_ptr<Allocator>& allocator) {
  for (auto d : shape) DITSERVE_CHECK(d >= 0, "empty: negative size in ", shape_str(shape));
  const std::size_t bytes = static_cast<std::size_t>(shape_numel(shape)) * dtype_size(dtype);
  return Tensor(std::make_shared<Storage>(allocator, bytes), dtype, shape,
                contiguous_strides(shape));
}

Tensor Tensor::empty_host(const Shape& shape, DType dtype) {
  return empty(shape, dtype, make_host_allocator());
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape) {
  DITSERVE_CHECK(static_cast<std::int64_t>(values.size()) == shape_numel(shape), "from_vector: ",
                 values.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = empty_host(shape, DType::f32);
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(float));
  return t;
}

Device Tensor::device() const {
  DITSERVE_CHECK(defined(), "device() of an undefined tensor");
  return storage_->device();
}

std::int64_t Tensor::wrap_dim(std::int64_t dim, std::int64_t ndim) const {
  const std::int64_t wrapped = dim < 0 ? dim + ndim : dim;
  DITSERVE_CHECK(wrapped >= 0 && wrapped < ndim, "dimension ", dim, " out of range for ",
                 describe());
  return wrapped;
}

std::int64_t Tensor::size(std::int64_t d) const { return shape_[wrap_dim(d, dim())]; }
std::int64_t Tensor::stride(std::int64_t d) const { return strides_[wrap_dim(d, dim())]; }

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (std::size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " on " + device().str();
}

void* Tensor::raw_data() const {
  DITSERVE_CHECK(defined(), "data of an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<std::int64_t>(dtype_size(dtype_));
}

Tensor Tensor::view(const Shape& shape) const {
  DITSERVE_CHECK(is_contiguous(), "view: ", describe(), " is not contiguous");
  Shape resolved = shape;
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      DITSERVE_CHECK(infer < 0, "view: more than one -1 in ", shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      DITSERVE_CHECK(resolved[i] >= 0, "view: bad size in ", shape_str(shape));
      known *= resolved[i];
    }
  }
  if (infer >= 0) {
    DITSERVE_CHECK(known > 0 && numel() % known == 0, "view: cannot infer -1 in ",
                   shape_str(shape), " for ", describe());
    resolved[infer] = numel() / known;
  }
  DITSERVE_CHECK(shape_numel(resolved) == numel(), "view: ", shape_str(shape),
                 " does not match the ", numel(), " elements of ", describe());
  return Tensor(storage_, dtype_, resolved, contiguous_strides(resolved), offset_);
}

Tensor Tensor::permute(const std::vector<std::int64_t>& dims) const {
  DITSERVE_CHECK(static_cast<std::int64_t>(dims.size()) == dim(), "permute: ", dims.size(),
                 " dims given for ", describe());
  Shape shape(dims.size()), strides(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const std::int64_t d = wrap_dim(dims[i], dim());
    DITSERVE_CHECK(!seen[d], "permute: dimension ", d, " repeated");
    seen[d] = true;
    shape[i] = shape_[d];
    strides[i] = strides_[d];
  }
  return Tensor(storage_, dtype_, shape, strides, offset_);
}

Tensor Tensor::transpose(std::int64_t a, std::int64_t b) const {
  std::vector<std::int64_t> dims(shape_.size());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(a, dim())], dims[wrap_dim(b, dim())]);
  return permute(dims);
}

Tensor Tensor::narrow(std::int64_t d, std::int64_t start, std::int64_t length) const {
  d = wrap_dim(d, dim());
  DITSERVE_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d], "narrow: [", start,
                 ", ", start + length, ") out of range for dim ", d, " of ", describe());
  Shape shape = shape_;
  shape[d] = length;
  return Tensor(storage_, dtype_, shape, strides_, offset_ + start * strides_[d]);
}

Tensor Tensor::select(std::int64_t d, std::int64_t index) const {
  d = wrap_dim(d, dim());
  if (index < 0) index += shape_[d];
  DITSERVE_CHECK(index >= 0 && index < shape_[d], "select: index ", index,
                 " out of range for dim ", d, " of ", describe());
  Shape shape = shape_, strides = strides_;
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return Tensor(storage_, dtype_, shape, strides, offset_ + index * strides_[d]);
}

Tensor Tensor::unsqueeze(std::int64_t d) const {
  d = wrap_dim(d, dim() + 1);
  Shape shape = shape_, strides = strides_;
  const std::int64_t stride = d < dim() ? strides_[d] * shape_[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return Tensor(storage_, dtype_, shape, strides, offset_);
}

Tensor Tensor::squeeze(std::int64_t d) const {
  d = wrap_dim(d, dim());
  DITSERVE_CHECK(shape_[d] == 1, "squeeze: dim ", d, " of ", describe(), " is not 1");
  Shape shape = shape_, strides = strides_;
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return Tensor(storage_, dtype_, shape, strides, offset_);
}

Tensor Tensor::expand(const Shape& shape) const {
  DITSERVE_CHECK(shape.size() >= shape_.size(), "expand: ", shape_str(shape),
                 " has fewer dims than ", describe());
  const std::size_t lead = shape.size() - shape_.size();
  Shape strides(shape.size(), 0);
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) continue;
    const std::int64_t have = shape_[i - lead];
    if (have == shape[i]) {
      strides[i] = strides_[i - lead];
    } else {
      DITSERVE_CHECK(have == 1, "expand: cannot broadcast ", describe(), " to ",
                     shape_str(shape));
    }
  }
  return Tensor(storage_, dtype_, shape, strides, offset_);
}

Tensor Tensor::flatten(std::int64_t first, std::int64_t last) const {
  first = wrap_dim(first, dim());
  last = wrap_dim(last, dim());
  DITSERVE_CHECK(first <= last, "flatten: first dim after last");
  std::int64_t merged = 1;
  for (std::int64_t i = first; i <= last; ++i) merged *= shape_[i];
  // Walking inwards-out, each dim of size > 1 must step over the whole block inside it.
  // Size-1 dims carry no addressing, and an empty range has nothing to address.
  std::int64_t inner = 1, expected = -1;
  for (std::int64_t i = last; i >= first && merged > 0; --i) {
    if (shape_[i] == 1) continue;
    if (expected < 0) {
      inner = strides_[i];
    } else {
      DITSERVE_CHECK(strides_[i] == expected, "flatten: dims ", first, "..", last, " of ",
                     describe(), " are not mergeable; make it contiguous");
    }
    expected = strides_[i] * shape_[i];
  }
  Shape shape(shape_.begin(), shape_.begin() + first);
  Shape strides(strides_.begin(), strides_.begin() + first);
  shape.push_back(merged);
  strides.push_back(inner);
  shape.insert(shape.end(), shape_.begin() + last + 1, shape_.end());
  strides.insert(strides.end(), strides_.begin() + last + 1, strides_.end());
  return Tensor(storage_, dtype_, shape, strides, offset_);
}

namespace {
float load_as_f32(const void* base, DType dtype, std::int64_t index) {
  switch (dtype) {
    case DType::f32: return static_cast<const float*>(base)[index];
    case DType::bf16: return bf16_to_f32(static_cast<const std::uint16_t*>(base)[index]);
    case DType::f16: return f16_to_f32(static_cast<const std::uint16_t*>(base)[index]);
    case DType::i32: return static_cast<float>(static_cast<const std::int32_t*>(base)[index]);
    case DType::i64: return static_cast<float>(static_cast<const std::int64_t*>(base)[index]);
    case DType::u8: return static_cast<float>(static_cast<const std::uint8_t*>(base)[index]);
  }
  return 0.0f;
}
}  // namespace

float Tensor::item_f32(const std::vector<std::int64_t>& index) const {
  DITSERVE_CHECK(device().is_cpu(), "item_f32: ", describe(), " is not on the host");
  DITSERVE_CHECK(static_cast<std::int64_t>(index.size()) == dim(), "item_f32: index rank ",
                 index.size(), " for ", describe());
  std::int64_t linear = 0;
  for (std::size_t i = 0; i < index.size(); ++i) {
    DITSERVE_CHECK(index[i] >= 0 && index[i] < shape_[i], "item_f32: index out of range for ",
                   describe());
    linear += index[i] * strides_[i];
  }
  return load_as_f32(raw_data(), dtype_, linear);
}

std::vector<float> Tensor::to_vector_f32() const {
  DITSERVE_CHECK(device().is_cpu(), "to_vector_f32: ", describe(), " is not on the host");
  std::vector<float> out(static_cast<std::size_t>(numel()));
  std::vector<std::int64_t> index(shape_.size(), 0);
  for (std::size_t n = 0; n < out.size(); ++n) {
    std::int64_t linear = 0;
    for (std::size_t i = 0; i < index.size(); ++i) linear += index[i] * strides_[i];
    out[n] = load_as_f32(raw_data(), dtype_, linear);
    for (std::size_t i = index.size(); i-- > 0;) {
      if (++index[i] < shape_[i]) break;
      index[i] = 0;
    }
  }
  return out;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::int64_t da = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
    const std::int64_t db = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
    DITSERVE_CHECK(da == db || da == 1 || db == 1, "shapes ", shape_str(a), " and ",
                   shape_str(b), " cannot broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  const std::size_t lead = to.size() - from.size();
  for (std::size_t i = 0; i < from.size(); ++i) {
    if (from[i] != 1 && from[i] != to[lead + i]) return false;
  }
  return true;
}

}  // namespace ditserve
