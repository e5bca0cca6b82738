#pragma once
// Helpers for the comm tests (their devices: support/cpu_devices.h): tensors filled with
// distinguishable values on a given rank, and element access through strides.

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/collectives.h"
#include "comm/fabric.h"
#include "support/cpu_devices.h"
#include "tensor/error.h"

namespace ditserve::testing_comm {

inline std::int64_t offset_of(const Tensor& t, const std::vector<std::int64_t>& idx) {
  std::int64_t off = 0;
  for (std::size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides()[d];
  return off;
}
inline float at(const Tensor& t, const std::vector<std::int64_t>& idx) {
  return t.data<float>()[offset_of(t, idx)];
}

inline void for_each_index(const Shape& shape,
                           const std::function<void(const std::vector<std::int64_t>&)>& fn) {
  if (shape_numel(shape) == 0) return;
  std::vector<std::int64_t> idx(shape.size(), 0);
  while (true) {
    fn(idx);
    std::int64_t d = static_cast<std::int64_t>(shape.size()) - 1;
    while (d >= 0 && ++idx[static_cast<std::size_t>(d)] == shape[static_cast<std::size_t>(d)]) {
      idx[static_cast<std::size_t>(d)] = 0;
      --d;
    }
    if (d < 0) return;
  }
}

// A contiguous f32 tensor on `rank` whose k-th element is base + k.
inline Tensor filled(Fabric& fabric, int rank, const Shape& shape, float base) {
  Tensor t = fabric.device(rank).empty(shape, DType::f32);
  float* p = t.data<float>();
  for (std::int64_t k = 0; k < t.numel(); ++k) p[k] = base + static_cast<float>(k);
  return t;
}

// Every member's input: shape with `dim` replaced by lengths[i], on its rank, distinct values.
inline std::vector<Tensor> member_inputs(Fabric& fabric, const DeviceGroup& group, Shape shape,
                                         std::int64_t dim, const std::vector<std::int64_t>& lengths) {
  std::vector<Tensor> inputs;
  for (int i = 0; i < group.size(); ++i) {
    shape[static_cast<std::size_t>(dim)] = lengths[static_cast<std::size_t>(i)];
    inputs.push_back(filled(fabric, group.ranks[static_cast<std::size_t>(i)], shape,
                            10000.0f * static_cast<float>(i + 1)));
  }
  return inputs;
}

inline std::vector<std::int64_t> offsets(const std::vector<std::int64_t>& sizes) {
  std::vector<std::int64_t> out(sizes.size() + 1, 0);
  for (std::size_t i = 0; i < sizes.size(); ++i) out[i + 1] = out[i] + sizes[i];
  return out;
}

// Checks `out` equals the concatenation along dim of parts, element by element.
inline void expect_concat(const Tensor& out, const std::vector<Tensor>& parts, std::int64_t dim) {
  std::vector<std::int64_t> lengths;
  for (const Tensor& p : parts) lengths.push_back(p.size(dim));
  const auto off = offsets(lengths);
  Shape shape = parts[0].shape();
  shape[static_cast<std::size_t>(dim)] = off.back();
  ASSERT_EQ(out.shape(), shape);
  for_each_index(shape, [&](const std::vector<std::int64_t>& idx) {
    std::size_t i = 0;
    const std::int64_t x = idx[static_cast<std::size_t>(dim)];
    while (!(x >= off[i] && x < off[i + 1])) ++i;
    auto src = idx;
    src[static_cast<std::size_t>(dim)] = x - off[i];
    ASSERT_EQ(at(out, idx), at(parts[i], src)) << "at element from member " << i;
  });
}

inline void expect_on_members(const Fabric& fabric, const DeviceGroup& group,
                              const std::vector<Tensor>& outputs) {
  ASSERT_EQ(static_cast<int>(outputs.size()), group.size());
  for (int i = 0; i < group.size(); ++i) {
    EXPECT_EQ(outputs[static_cast<std::size_t>(i)].device(),
              fabric.device(group.ranks[static_cast<std::size_t>(i)]).device());
  }
}

// Reference all_to_all: output j = concat over i of narrow(inputs[i], split_dim, piece j).
inline void expect_all_to_all(const Fabric& fabric, const DeviceGroup& group,
                              const std::vector<Tensor>& inputs, std::int64_t split_dim,
                              const std::vector<std::int64_t>& sizes, std::int64_t concat_dim,
                              const std::vector<Tensor>& outputs) {
  expect_on_members(fabric, group, outputs);
  const auto off = offsets(sizes);
  for (int j = 0; j < group.size(); ++j) {
    std::vector<Tensor> pieces;
    for (const Tensor& in : inputs) pieces.push_back(in.narrow(split_dim, off[j], sizes[j]));
    expect_concat(outputs[static_cast<std::size_t>(j)], pieces, concat_dim);
  }
}

// Runs fn, expecting InvalidArgument whose message contains every one of `needles`.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown; expected one naming " << needles.front();
  } catch (const InvalidArgument& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

}  // namespace ditserve::testing_comm
