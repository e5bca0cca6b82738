#include "kernels/elementwise.h"

#include <string>

#include "kernels/cpu/elementwise.h"
#include "kernels/dispatch.h"

namespace ditserve {
namespace {

// Broadcast shape of the operands, with the op named in the error.
Shape broadcast_operands(std::string_view op, const std::vector<const Tensor*>& operands) {
  Shape shape = operands.front()->shape();
  try {
    for (const Tensor* t : operands) shape = broadcast_shapes(shape, t->shape());
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string(op) + ": " + e.what());
  }
  return shape;
}

Tensor binary(Backend& be, std::string_view op, const Tensor& a, const Tensor& b, bool multiply,
              float alpha) {
  detail::check_float(op, "a", be, a);
  detail::check_float(op, "b", be, b);
  detail::check_same_dtype(op, a, b);
  const Shape shape = broadcast_operands(op, {&a, &b});
  Tensor out = be.empty(shape, a.dtype());
  const Tensor ea = a.expand(shape), eb = b.expand(shape);
  if (be.device().is_cpu()) {
    if (multiply) {
      cpu::mul(out, ea, eb);
    } else {
      cpu::add_scaled(out, ea, eb, alpha);
    }
  } else {
    DITSERVE_ON_CUDA({
      DITSERVE_CHECK(shape.size() <= 8, op, ": the CUDA kernel takes at most 8 dims, got ",
                     shape_str(shape));
      const auto kind = multiply ? cuda::BinaryOp::mul : cuda::BinaryOp::add_scaled;
      cuda::binary(cuda::as_cuda(be), kind, out, ea, eb, alpha);
    });
  }
  return out;
}

}  // namespace

Tensor add(Backend& be, const Tensor& a, const Tensor& b) {
  return binary(be, "add", a, b, /*multiply=*/false, 1.0f);
}

Tensor mul(Backend& be, const Tensor& a, const Tensor& b) {
  return binary(be, "mul", a, b, /*multiply=*/true, 1.0f);
}

Tensor add_scaled(Backend& be, const Tensor& a, const Tensor& b, float alpha) {
  return binary(be, "add_scaled", a, b, /*multiply=*/false, alpha);
}

Tensor gated_residual(Backend& be, const Tensor& x, const Tensor& gate, const Tensor& y) {
  constexpr std::string_view op = "gated_residual";
  detail::check_float(op, "x", be, x);
  detail::check_float(op, "gate", be, gate);
  detail::check_float(op, "y", be, y);
  detail::check_same_dtype(op, x, gate);
  detail::check_same_dtype(op, x, y);
  const Shape shape = broadcast_operands(op, {&x, &gate, &y});
  Tensor out = be.empty(shape, x.dtype());
  const Tensor ex = x.expand(shape), eg = gate.expand(shape), ey = y.expand(shape);
  if (be.device().is_cpu()) {
    cpu::gated_residual(out, ex, eg, ey);
  } else {
    DITSERVE_ON_CUDA({
      DITSERVE_CHECK(shape.size() <= 8, op, ": the CUDA kernel takes at most 8 dims, got ",
                     shape_str(shape));
      cuda::gated_residual(cuda::as_cuda(be), out, ex, eg, ey);
    });
  }
  return out;
}

}  // namespace ditserve
