#include "kernels/dispatch.h"

#include <string>

namespace ditserve::detail {

void check_on_backend(std::string_view op, std::string_view what, const Backend& be,
                      const Tensor& t) {
  DITSERVE_CHECK(t.defined(), op, ": ", what, " is undefined");
  DITSERVE_CHECK(t.device() == be.device(), op, ": ", what, " is ", t.describe(),
                 " but the backend runs on ", be.device().str());
}

void check_float(std::string_view op, std::string_view what, const Backend& be,
                 const Tensor& t) {
  check_on_backend(op, what, be, t);
  if (be.device().is_cpu()) {
    DITSERVE_CHECK(t.dtype() == DType::f32, op, ": ", what, " is ", t.describe(),
                   "; the CPU backend computes in f32 (cast first)");
  } else {
    DITSERVE_CHECK(is_floating(t.dtype()), op, ": ", what, " is ", t.describe(),
                   "; a floating dtype is required");
  }
}

void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b) {
  DITSERVE_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", a.describe(), " vs ",
                 b.describe(), ")");
}

}  // namespace ditserve::detail
