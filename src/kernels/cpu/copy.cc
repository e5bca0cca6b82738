#include "kernels/cpu/copy.h"

#include <cstring>

#include "tensor/error.h"

namespace ditserve::cpu {
namespace {

// Walks dst and src together in row-major order of dst's shape, copying the innermost
// dim as a block when both have unit stride there.
template <std::size_t kElem>
void copy_elements(const Tensor& dst, const Tensor& src) {
  const Shape& shape = dst.shape();
  const std::size_t ndim = shape.size();
  auto* d = static_cast<char*>(dst.raw_data());
  const auto* s = static_cast<const char*>(src.raw_data());
  if (ndim == 0) {
    std::memcpy(d, s, kElem);
    return;
  }
  const std::int64_t inner = shape[ndim - 1];
  const std::int64_t ds = dst.strides()[ndim - 1], ss = src.strides()[ndim - 1];
  const std::int64_t outer = dst.numel() / std::max<std::int64_t>(inner, 1);
  std::vector<std::int64_t> index(ndim - 1, 0);
  for (std::int64_t o = 0; o < outer && inner > 0; ++o) {
    std::int64_t doff = 0, soff = 0;
    for (std::size_t i = 0; i + 1 < ndim; ++i) {
      doff += index[i] * dst.strides()[i];
      soff += index[i] * src.strides()[i];
    }
    char* drow = d + doff * kElem;
    const char* srow = s + soff * kElem;
    if (ds == 1 && ss == 1) {
      std::memcpy(drow, srow, inner * kElem);
    } else {
      for (std::int64_t j = 0; j < inner; ++j) {
        std::memcpy(drow + j * ds * kElem, srow + j * ss * kElem, kElem);
      }
    }
    for (std::size_t i = ndim - 1; i-- > 0;) {
      if (++index[i] < shape[i]) break;
      index[i] = 0;
    }
  }
}

template <typename T>
T from_f32(float v);
template <> std::int32_t from_f32<std::int32_t>(float v) { return static_cast<std::int32_t>(v); }
template <> std::int64_t from_f32<std::int64_t>(float v) { return static_cast<std::int64_t>(v); }
template <> std::uint8_t from_f32<std::uint8_t>(float v) { return static_cast<std::uint8_t>(v); }

float load(const void* p, DType dtype, std::int64_t i) {
  switch (dtype) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::bf16: return bf16_to_f32(static_cast<const std::uint16_t*>(p)[i]);
    case DType::f16: return f16_to_f32(static_cast<const std::uint16_t*>(p)[i]);
    case DType::i32: return static_cast<float>(static_cast<const std::int32_t*>(p)[i]);
    case DType::i64: return static_cast<float>(static_cast<const std::int64_t*>(p)[i]);
    case DType::u8: return static_cast<const std::uint8_t*>(p)[i];
  }
  return 0;
}

void store(void* p, DType dtype, std::int64_t i, float v) {
  switch (dtype) {
    case DType::f32: static_cast<float*>(p)[i] = v; return;
    case DType::bf16: static_cast<std::uint16_t*>(p)[i] = f32_to_bf16(v); return;
    case DType::f16: static_cast<std::uint16_t*>(p)[i] = f32_to_f16(v); return;
    case DType::i32: static_cast<std::int32_t*>(p)[i] = from_f32<std::int32_t>(v); return;
    case DType::i64: static_cast<std::int64_t*>(p)[i] = from_f32<std::int64_t>(v); return;
    case DType::u8: static_cast<std::uint8_t*>(p)[i] = from_f32<std::uint8_t>(v); return;
  }
}

}  // namespace

void copy_strided(const Tensor& dst, const Tensor& src) {
  switch (dtype_size(dst.dtype())) {
    case 1: copy_elements<1>(dst, src); return;
    case 2: copy_elements<2>(dst, src); return;
    case 4: copy_elements<4>(dst, src); return;
    case 8: copy_elements<8>(dst, src); return;
  }
  throw Error("copy_strided: unsupported element size");
}

void cast(const Tensor& out, const Tensor& src) {
  const std::int64_t n = out.numel();
  // Integer-to-integer casts go through int64 so that large ids survive.
  if (!is_floating(out.dtype()) && !is_floating(src.dtype())) {
    for (std::int64_t i = 0; i < n; ++i) {
      std::int64_t v = 0;
      switch (src.dtype()) {
        case DType::i32: v = src.data<std::int32_t>()[i]; break;
        case DType::i64: v = src.data<std::int64_t>()[i]; break;
        default: v = src.data<std::uint8_t>()[i]; break;
      }
      switch (out.dtype()) {
        case DType::i32: out.data<std::int32_t>()[i] = static_cast<std::int32_t>(v); break;
        case DType::i64: out.data<std::int64_t>()[i] = v; break;
        default: out.data<std::uint8_t>()[i] = static_cast<std::uint8_t>(v); break;
      }
    }
    return;
  }
  for (std::int64_t i = 0; i < n; ++i) store(out.raw_data(), out.dtype(), i, load(src.raw_data(), src.dtype(), i));
}

}  // namespace ditserve::cpu
