#include "kernels/gemm.h"

#include <optional>
#include <string_view>
#include <utility>

#include "kernels/copy.h"
#include "kernels/cpu/gemm.h"
#include "kernels/dispatch.h"

namespace ditserve {
namespace {

std::int64_t product(const Shape& shape, std::size_t first, std::size_t last) {
  std::int64_t n = 1;
  for (std::size_t i = first; i < last; ++i) n *= shape[i];
  return n;
}

// Stride of dims [first, last) of t merged into one; `fallback` when none of them has
// size > 1 (any stride addresses them); nullopt when they do not merge.
std::optional<std::int64_t> merged_stride(const Tensor& t, std::size_t first, std::size_t last,
                                          std::int64_t fallback) {
  std::optional<std::int64_t> inner;
  std::int64_t expected = 0;
  for (std::size_t i = last; i-- > first;) {
    const std::int64_t size = t.shape()[i], stride = t.strides()[i];
    if (size == 1) continue;
    if (inner && stride != expected) return std::nullopt;
    if (!inner) inner = stride;
    expected = stride * size;
  }
  return inner.value_or(fallback);
}

// (row, column) strides under which a [rows, cols] matrix is a BLAS operand: one unit
// stride and a leading dimension covering the other dim. nullopt if the view has none.
std::optional<std::pair<std::int64_t, std::int64_t>> blas_strides(std::int64_t rows,
                                                                  std::int64_t cols,
                                                                  std::int64_t rs,
                                                                  std::int64_t cs) {
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
    return std::pair{rows == 1 ? cols : rs, std::int64_t{1}};
  }
  if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
    return std::pair{std::int64_t{1}, cols == 1 ? rows : cs};
  }
  return std::nullopt;
}

// t [..., R, C] as a 3-D view [batch, R, C] that BLAS (and cuBLASLt) can read; a
// contiguous copy when t's strides do not allow one.
Tensor batched_matrices(Backend& be, const Tensor& t) {
  const std::size_t nd = t.shape().size();
  const std::int64_t rows = t.size(-2), cols = t.size(-1);
  const auto batch_stride = merged_stride(t, 0, nd - 2, rows * cols);
  const auto strides = blas_strides(rows, cols, t.stride(-2), t.stride(-1));
  if (!batch_stride || !strides) return batched_matrices(be, contiguous(be, t));
  return Tensor(t.storage(), t.dtype(), {product(t.shape(), 0, nd - 2), rows, cols},
                {*batch_stride, strides->first, strides->second}, t.offset());
}

// x [..., K] as [M, K] with unit column stride and row stride >= K.
Tensor as_rows(Backend& be, const Tensor& x) {
  const std::size_t nd = x.shape().size();
  const std::int64_t rows = product(x.shape(), 0, nd - 1), k = x.size(-1);
  const auto row_stride = merged_stride(x, 0, nd - 1, k);
  if (!row_stride || (k != 1 && x.stride(-1) != 1) || (rows > 1 && *row_stride < k)) {
    return as_rows(be, contiguous(be, x));
  }
  return Tensor(x.storage(), x.dtype(), {rows, k}, {rows > 1 ? *row_stride : k, 1}, x.offset());
}

// Checks linear()'s operands under the name `op`; returns the output shape x[..., N].
Shape check_linear(std::string_view op, const Backend& be, const Tensor& x, const Tensor& w,
                   const Tensor& bias) {
  detail::check_float(op, "x", be, x);
  detail::check_float(op, "w", be, w);
  detail::check_same_dtype(op, x, w);
  DITSERVE_CHECK(x.dim() >= 1, op, ": x is ", x.describe(), "; it needs a feature dim");
  DITSERVE_CHECK(w.dim() == 2, op, ": w is ", w.describe(), "; expected [N, K]");
  const std::int64_t k = x.size(-1), n = w.size(0);
  DITSERVE_CHECK(w.size(1) == k, op, ": x ", x.describe(), " has K = ", k, " but w is ",
                 w.describe());
  DITSERVE_CHECK(k > 0, op, ": x ", x.describe(), " has an empty feature dim");
  DITSERVE_CHECK(w.is_contiguous(), op, ": w ", w.describe(), " must be contiguous");
  if (bias.defined()) {
    detail::check_float(op, "bias", be, bias);
    detail::check_same_dtype(op, x, bias);
    DITSERVE_CHECK(bias.dim() == 1 && bias.size(0) == n, op, ": bias is ", bias.describe(),
                   "; expected [", n, "] for w ", w.describe());
  }
  Shape shape = x.shape();
  shape.back() = n;
  return shape;
}

}  // namespace

Tensor linear(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias, Activation act) {
  const Shape shape = check_linear("linear", be, x, w, bias);
  const std::int64_t n = w.size(0);
  Tensor out = be.empty(shape, x.dtype());
  if (out.numel() == 0) return out;
  const Tensor x2d = as_rows(be, x);
  const Tensor out2d = out.view({x2d.size(0), n});
  const Tensor b = bias.defined() ? contiguous(be, bias) : Tensor();
  if (be.device().is_cpu()) {
    cpu::linear(out2d, x2d, w, b, act);
  } else {
    DITSERVE_ON_CUDA(cuda::linear(cuda::as_cuda(be), out2d, x2d, w, b, act));
  }
  return out;
}

Tensor linear_residual(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
                       const Tensor& residual, const Tensor& gate) {
  constexpr std::string_view op = "linear_residual";
  const Shape shape = check_linear(op, be, x, w, bias);
  const std::int64_t n = w.size(0);
  detail::check_float(op, "residual", be, residual);
  detail::check_same_dtype(op, x, residual);
  DITSERVE_CHECK(residual.shape() == shape, op, ": residual is ", residual.describe(),
                 "; expected ", shape_str(shape), " (x ", x.describe(), " times w ",
                 w.describe(), ")");
  if (gate.defined()) {
    detail::check_float(op, "gate", be, gate);
    detail::check_same_dtype(op, x, gate);
    DITSERVE_CHECK(x.dim() >= 2, op, ": a gate needs a sample dim, but x is ", x.describe());
    DITSERVE_CHECK(gate.dim() == 2 && gate.size(0) == x.size(0) && gate.size(1) == n, op,
                   ": gate is ", gate.describe(), "; expected [", x.size(0), ", ", n,
                   "] (samples of x ", x.describe(), ", outputs of w ", w.describe(), ")");
  }
  Tensor out = be.empty(shape, x.dtype());
  if (out.numel() == 0) return out;
  const Tensor x2d = as_rows(be, x);
  const Tensor residual2d = as_rows(be, residual);
  const Tensor out2d = out.view({x2d.size(0), n});
  const Tensor b = bias.defined() ? contiguous(be, bias) : Tensor();
  const Tensor g = gate.defined() ? contiguous(be, gate) : Tensor();
  if (be.device().is_cpu()) {
    cpu::linear_residual(out2d, x2d, w, b, residual2d, g);
  } else {
    DITSERVE_ON_CUDA(cuda::linear_residual(cuda::as_cuda(be), out2d, x2d, w, b, residual2d, g));
  }
  return out;
}

Tensor linear_stacked(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
                      std::int64_t groups) {
  constexpr std::string_view op = "linear_stacked";
  const Shape rows_shape = check_linear(op, be, x, w, bias);
  DITSERVE_CHECK(groups >= 1 && w.size(0) % groups == 0, op, ": groups = ", groups,
                 " must be >= 1 and divide the ", w.size(0), " output rows of w ", w.describe());
  const std::int64_t n = w.size(0) / groups;
  Shape shape = rows_shape;
  shape.back() = n;
  shape.insert(shape.begin(), groups);
  Tensor out = be.empty(shape, x.dtype());
  if (out.numel() == 0) return out;
  const Tensor x2d = as_rows(be, x);
  const Tensor out3d = out.view({groups, x2d.size(0), n});
  const Tensor b = bias.defined() ? contiguous(be, bias) : Tensor();
  if (be.device().is_cpu()) {
    cpu::linear_stacked(out3d, x2d, w, b);
  } else {
    DITSERVE_ON_CUDA(cuda::linear_stacked(cuda::as_cuda(be), out3d, x2d, w, b));
  }
  return out;
}

Tensor matmul(Backend& be, const Tensor& a, const Tensor& b) {
  detail::check_float("matmul", "a", be, a);
  detail::check_float("matmul", "b", be, b);
  detail::check_same_dtype("matmul", a, b);
  DITSERVE_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: a ", a.describe(), " and b ", b.describe(),
                 " must both be matrices or batches of matrices");
  const Shape batch(a.shape().begin(), a.shape().end() - 2);
  const bool shared_b = b.dim() == 2;
  DITSERVE_CHECK(shared_b || Shape(b.shape().begin(), b.shape().end() - 2) == batch,
                 "matmul: batch dims of a ", a.describe(), " and b ", b.describe(),
                 " differ (b may also have none)");
  const std::int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  DITSERVE_CHECK(b.size(-2) == k, "matmul: a ", a.describe(), " has K = ", k, " but b is ",
                 b.describe());
  DITSERVE_CHECK(k > 0, "matmul: a ", a.describe(), " has an empty contraction dim");
  Shape shape = batch;
  shape.push_back(m);
  shape.push_back(n);
  Tensor out = be.empty(shape, a.dtype());
  if (out.numel() == 0) return out;
  const Tensor a3 = batched_matrices(be, a);
  Tensor b3 = batched_matrices(be, b);
  const std::int64_t count = a3.size(0);
  if (shared_b && count != 1) {
    b3 = Tensor(b3.storage(), b3.dtype(), {count, k, n}, {0, b3.stride(1), b3.stride(2)},
                b3.offset());
  }
  const Tensor out3 = out.view({count, m, n});
  if (be.device().is_cpu()) {
    cpu::matmul(out3, a3, b3);
  } else {
    DITSERVE_ON_CUDA(cuda::matmul(cuda::as_cuda(be), out3, a3, b3));
  }
  return out;
}

}  // namespace ditserve
