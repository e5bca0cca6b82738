#include "kernels/embedding.h"

#include "kernels/copy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/dispatch.h"

namespace ditserve {

Tensor embedding(Backend& be, const Tensor& table, const Tensor& ids) {
  constexpr std::string_view op = "embedding";
  detail::check_float(op, "table", be, table);
  detail::check_on_backend(op, "ids", be, ids);
  DITSERVE_CHECK(table.dim() == 2, op, ": table is ", table.describe(), "; expected [V, C]");
  DITSERVE_CHECK(ids.dtype() == DType::i32 || ids.dtype() == DType::i64, op, ": ids is ",
                 ids.describe(), "; expected i32 or i64");
  const Tensor tab = contiguous(be, table);
  const Tensor idx = contiguous(be, ids);
  Shape shape = ids.shape();
  shape.push_back(table.size(1));
  Tensor out = be.empty(shape, table.dtype());
  const Tensor rows = out.view({ids.numel(), table.size(1)});
  if (be.device().is_cpu()) {
    cpu::embedding(rows, tab, idx);
  } else {
    DITSERVE_ON_CUDA(cuda::embedding(cuda::as_cuda(be), rows, tab, idx));
  }
  return out;
}

Tensor timestep_embedding(Backend& be, const Tensor& t, int dim, bool cos_first,
                          float max_period) {
  constexpr std::string_view op = "timestep_embedding";
  detail::check_on_backend(op, "t", be, t);
  DITSERVE_CHECK(t.dtype() == DType::f32 && t.dim() == 1, op, ": t is ", t.describe(),
                 "; expected f32 [B]");
  DITSERVE_CHECK(dim > 0, op, ": dim must be > 0, got ", dim);
  DITSERVE_CHECK(max_period > 0, op, ": max_period must be > 0, got ", max_period);
  const Tensor ts = contiguous(be, t);
  Tensor out = be.empty({t.size(0), dim}, DType::f32);
  if (be.device().is_cpu()) {
    cpu::timestep_embedding(out, ts, dim, cos_first, max_period);
  } else {
    DITSERVE_ON_CUDA(
        cuda::timestep_embedding(cuda::as_cuda(be), out, ts, dim, cos_first, max_period));
  }
  return out;
}

}  // namespace ditserve
