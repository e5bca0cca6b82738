#include "comm/collectives.h"

#include <numeric>
#include <string>
#include <string_view>

#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

void check_group(std::string_view op, const Fabric& fabric, const DeviceGroup& group) {
  try {
    group.validate(fabric);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string(op) + ": " + e.what());
  }
}

// Throws unless t is defined and lives on member `member`'s device.
void check_on_member(std::string_view op, std::string_view what, const Fabric& fabric,
                     const DeviceGroup& group, int member, const Tensor& t) {
  const Device expected = fabric.device(group.ranks[static_cast<std::size_t>(member)]).device();
  DITSERVE_CHECK(t.defined(), op, ": ", what, " (member ", member, ") is undefined");
  DITSERVE_CHECK(t.device() == expected, op, ": ", what, " (member ", member, ") is ",
                 t.describe(), " but member ", member, " is ", expected.str());
}

// The inputs are one per member, on its device, with the dtype and rank of inputs[0].
void check_inputs(std::string_view op, const Fabric& fabric, const DeviceGroup& group,
                  const std::vector<Tensor>& inputs) {
  DITSERVE_CHECK(static_cast<int>(inputs.size()) == group.size(), op, ": ", inputs.size(),
                 " inputs for a group of ", group.size(), " members");
  for (int i = 0; i < group.size(); ++i) {
    const std::string what = "inputs[" + std::to_string(i) + "]";
    const Tensor& t = inputs[static_cast<std::size_t>(i)];
    check_on_member(op, what, fabric, group, i, t);
    DITSERVE_CHECK(t.dtype() == inputs[0].dtype() && t.dim() == inputs[0].dim(), op, ": ", what,
                   " is ", t.describe(), ", dtype or rank differs from inputs[0] ",
                   inputs[0].describe());
  }
}

std::int64_t normalize_dim(std::string_view op, std::string_view name, const Tensor& t,
                           std::int64_t dim) {
  const std::int64_t ndim = t.dim();
  const std::int64_t d = dim < 0 ? dim + ndim : dim;
  DITSERVE_CHECK(d >= 0 && d < ndim, op, ": ", name, " ", dim, " out of range for ",
                 t.describe());
  return d;
}

void check_sizes(std::string_view op, const std::vector<std::int64_t>& sizes, int members,
                 std::int64_t total, std::string_view what) {
  DITSERVE_CHECK(static_cast<int>(sizes.size()) == members, op, ": ", sizes.size(),
                 " sizes for a group of ", members, " members");
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    DITSERVE_CHECK(sizes[i] >= 0, op, ": size ", i, " is negative (", sizes[i], ")");
  }
  const std::int64_t sum = std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0});
  DITSERVE_CHECK(sum == total, op, ": sizes sum to ", sum, " but ", what, " is ", total, " long");
}

// Shape of the concatenation along dim of `parts` (equal elsewhere), naming the culprit.
Shape concat_shape(std::string_view op, const std::vector<Shape>& parts, std::int64_t dim) {
  Shape out = parts.front();
  out[static_cast<std::size_t>(dim)] = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    for (std::size_t d = 0; d < out.size(); ++d) {
      DITSERVE_CHECK(static_cast<std::int64_t>(d) == dim || parts[i][d] == parts[0][d], op,
                     ": the piece from member ", i, " is ", shape_str(parts[i]),
                     ", which does not match member 0's ", shape_str(parts[0]),
                     " outside dim ", dim);
    }
    out[static_cast<std::size_t>(dim)] += parts[i][static_cast<std::size_t>(dim)];
  }
  return out;
}

// Concatenates inputs (one per member) along dim into a new tensor on member `member`.
Tensor gather_onto(Fabric& fabric, const DeviceGroup& group, const std::vector<Tensor>& inputs,
                   std::int64_t dim, const Shape& shape, int member) {
  const int to = group.ranks[static_cast<std::size_t>(member)];
  Tensor out = fabric.device(to).empty(shape, inputs[0].dtype());
  std::int64_t start = 0;
  for (int i = 0; i < group.size(); ++i) {
    const Tensor& piece = inputs[static_cast<std::size_t>(i)];
    const std::int64_t length = piece.size(dim);
    fabric.copy(group.ranks[static_cast<std::size_t>(i)], piece, to,
                out.narrow(dim, start, length));
    start += length;
  }
  return out;
}

std::vector<Shape> shapes_of(const std::vector<Tensor>& tensors) {
  std::vector<Shape> shapes;
  shapes.reserve(tensors.size());
  for (const Tensor& t : tensors) shapes.push_back(t.shape());
  return shapes;
}

}  // namespace

std::vector<Tensor> all_to_all(Fabric& fabric, const DeviceGroup& group,
                               const std::vector<Tensor>& inputs, std::int64_t split_dim,
                               const std::vector<std::int64_t>& split_sizes,
                               std::int64_t concat_dim) {
  constexpr std::string_view op = "all_to_all";
  check_group(op, fabric, group);
  check_inputs(op, fabric, group, inputs);
  const std::int64_t sd = normalize_dim(op, "split_dim", inputs[0], split_dim);
  const std::int64_t cd = normalize_dim(op, "concat_dim", inputs[0], concat_dim);
  const int n = group.size();
  for (int i = 0; i < n; ++i) {
    check_sizes(op, split_sizes, n, inputs[static_cast<std::size_t>(i)].size(sd),
                "split_dim of inputs[" + std::to_string(i) + "]");
  }
  // Member j receives from member i the slice [offset_j, offset_j + split_sizes[j]) of
  // inputs[i] along split_dim, placed at member i's offset along concat_dim.
  std::vector<Tensor> outputs;
  outputs.reserve(static_cast<std::size_t>(n));
  std::int64_t split_start = 0;
  for (int j = 0; j < n; ++j) {
    const std::int64_t length = split_sizes[static_cast<std::size_t>(j)];
    std::vector<Tensor> pieces;
    pieces.reserve(static_cast<std::size_t>(n));
    for (const Tensor& in : inputs) pieces.push_back(in.narrow(sd, split_start, length));
    const Shape shape = concat_shape(op, shapes_of(pieces), cd);
    outputs.push_back(gather_onto(fabric, group, pieces, cd, shape, j));
    split_start += length;
  }
  return outputs;
}

std::vector<Tensor> all_gather(Fabric& fabric, const DeviceGroup& group,
                               const std::vector<Tensor>& inputs, std::int64_t dim) {
  constexpr std::string_view op = "all_gather";
  check_group(op, fabric, group);
  check_inputs(op, fabric, group, inputs);
  const std::int64_t d = normalize_dim(op, "dim", inputs[0], dim);
  const Shape shape = concat_shape(op, shapes_of(inputs), d);
  std::vector<Tensor> outputs;
  outputs.reserve(inputs.size());
  for (int j = 0; j < group.size(); ++j) {
    outputs.push_back(gather_onto(fabric, group, inputs, d, shape, j));
  }
  return outputs;
}

Tensor gather(Fabric& fabric, const DeviceGroup& group, const std::vector<Tensor>& inputs,
              std::int64_t dim, int root) {
  constexpr std::string_view op = "gather";
  check_group(op, fabric, group);
  DITSERVE_CHECK(root >= 0 && root < group.size(), op, ": root ", root,
                 " out of range for a group of ", group.size(), " members");
  check_inputs(op, fabric, group, inputs);
  const std::int64_t d = normalize_dim(op, "dim", inputs[0], dim);
  const Shape shape = concat_shape(op, shapes_of(inputs), d);
  return gather_onto(fabric, group, inputs, d, shape, root);
}

std::vector<Tensor> scatter(Fabric& fabric, const DeviceGroup& group, const Tensor& input,
                            int root, std::int64_t dim, const std::vector<std::int64_t>& sizes) {
  constexpr std::string_view op = "scatter";
  check_group(op, fabric, group);
  DITSERVE_CHECK(root >= 0 && root < group.size(), op, ": root ", root,
                 " out of range for a group of ", group.size(), " members");
  check_on_member(op, "input", fabric, group, root, input);
  const std::int64_t d = normalize_dim(op, "dim", input, dim);
  const int n = group.size();
  check_sizes(op, sizes, n, input.size(d), "dim of input");
  const int from = group.ranks[static_cast<std::size_t>(root)];
  std::vector<Tensor> outputs;
  outputs.reserve(static_cast<std::size_t>(n));
  std::int64_t start = 0;
  for (int i = 0; i < n; ++i) {
    const int to = group.ranks[static_cast<std::size_t>(i)];
    const Tensor piece = input.narrow(d, start, sizes[static_cast<std::size_t>(i)]);
    Tensor out = fabric.device(to).empty(piece.shape(), input.dtype());
    fabric.copy(from, piece, to, out);
    outputs.push_back(out);
    start += sizes[static_cast<std::size_t>(i)];
  }
  return outputs;
}

std::vector<Tensor> all_reduce(Fabric& fabric, const DeviceGroup& group,
                               const std::vector<Tensor>& inputs) {
  constexpr std::string_view op = "all_reduce";
  check_group(op, fabric, group);
  check_inputs(op, fabric, group, inputs);
  const DType dtype = inputs[0].dtype();
  DITSERVE_CHECK(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16, op,
                 ": inputs must be f32, bf16 or f16, got ", inputs[0].describe());
  for (int i = 1; i < group.size(); ++i) {
    DITSERVE_CHECK(inputs[static_cast<std::size_t>(i)].shape() == inputs[0].shape(), op,
                   ": inputs[", i, "] is ", inputs[static_cast<std::size_t>(i)].describe(),
                   ", shape differs from inputs[0] ", inputs[0].describe());
  }
  const int n = group.size();
  const int root = group.ranks[0];
  Backend& be = fabric.device(root);
  // Member 0 sums in f32, in member order: the others' inputs are copied over first.
  const auto as_f32 = [&](const Tensor& t) {
    return dtype == DType::f32 ? contiguous(be, t) : cast(be, t, DType::f32);
  };
  Tensor sum = as_f32(inputs[0]);
  for (int i = 1; i < n; ++i) {
    const Tensor& in = inputs[static_cast<std::size_t>(i)];
    const Tensor here = be.empty(in.shape(), dtype);
    fabric.copy(group.ranks[static_cast<std::size_t>(i)], in, root, here);
    sum = add(be, sum, as_f32(here));
  }
  if (dtype != DType::f32) sum = cast(be, sum, dtype);
  std::vector<Tensor> outputs;
  outputs.reserve(static_cast<std::size_t>(n));
  outputs.push_back(sum);
  for (int j = 1; j < n; ++j) {
    const int rank = group.ranks[static_cast<std::size_t>(j)];
    Tensor out = fabric.device(rank).empty(sum.shape(), dtype);
    fabric.copy(root, sum, rank, out);
    outputs.push_back(out);
  }
  return outputs;
}

Tensor send_recv(Fabric& fabric, const DeviceGroup& group, const Tensor& src, int from, int to) {
  constexpr std::string_view op = "send_recv";
  check_group(op, fabric, group);
  DITSERVE_CHECK(from >= 0 && from < group.size(), op, ": from ", from,
                 " out of range for a group of ", group.size(), " members");
  DITSERVE_CHECK(to >= 0 && to < group.size(), op, ": to ", to,
                 " out of range for a group of ", group.size(), " members");
  check_on_member(op, "src", fabric, group, from, src);
  const int dst_rank = group.ranks[static_cast<std::size_t>(to)];
  Tensor out = fabric.device(dst_rank).empty(src.shape(), src.dtype());
  fabric.copy(group.ranks[static_cast<std::size_t>(from)], src, dst_rank, out);
  return out;
}

}  // namespace ditserve
