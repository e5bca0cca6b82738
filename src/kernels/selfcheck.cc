#include "kernels/selfcheck.h"

#include <cmath>
#include <functional>
#include <numbers>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/rope.h"

namespace ditserve {
namespace {

struct Context {
  Backend& be;
  std::unique_ptr<Backend> host = make_backend(Device::cpu());
  DType dtype;

  Tensor put(const std::vector<float>& values, const Shape& shape) {
    const Tensor t = Tensor::from_vector(values, shape);
    const Tensor typed = dtype == DType::f32 ? t : cast(*host, t, dtype);
    return be.device().is_cpu() ? typed : transfer(*host, typed, be);
  }
  std::vector<float> get(const Tensor& t) {
    const Tensor on_host = be.device().is_cpu() ? t : transfer(be, t, *host);
    return on_host.to_vector_f32();
  }
};

double max_abs_diff(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!std::isfinite(d)) return INFINITY;
    worst = std::max(worst, d);
  }
  return worst;
}

using Check = std::function<std::pair<std::vector<float>, std::vector<float>>(Context&)>;

const std::vector<std::pair<std::string, Check>>& checks() {
  static const std::vector<std::pair<std::string, Check>> all = {
      {"linear: identity weight plus bias returns x + bias",
       [](Context& c) {
         const Tensor x = c.put({1, -2, 3, 0.5f, 4, -1}, {2, 3});
         const Tensor w = c.put({1, 0, 0, 0, 1, 0, 0, 0, 1}, {3, 3});
         const Tensor b = c.put({0.25f, 0.5f, -0.75f}, {3});
         return std::pair{c.get(linear(c.be, x, w, b)),
                          std::vector<float>{1.25f, -1.5f, 2.25f, 0.75f, 4.5f, -1.75f}};
       }},
      {"matmul: 2x2 product",
       [](Context& c) {
         const Tensor a = c.put({1, 2, 3, 4}, {1, 2, 2});
         const Tensor b = c.put({5, 6, 7, 8}, {1, 2, 2});
         return std::pair{c.get(matmul(c.be, a, b)), std::vector<float>{19, 22, 43, 50}};
       }},
      {"attention: a single key returns its value",
       [](Context& c) {
         const Tensor q = c.put({0.3f, -0.2f, 0.9f, 0.1f, 0.5f, 0.5f, -1, 2,
                                 -1.5f, 0.25f, 0, 3, 1, -2, 0.5f, 0.75f}, {1, 2, 1, 8});
         const Tensor k = c.put({1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 1, 8});
         const Tensor v = c.put({0.5f, -1, 2, 0, 1, 1, -0.5f, 3}, {1, 1, 1, 8});
         const std::vector<float> row{0.5f, -1, 2, 0, 1, 1, -0.5f, 3};
         std::vector<float> want(row);
         want.insert(want.end(), row.begin(), row.end());
         return std::pair{c.get(attention(c.be, q, k, v)), want};
       }},
      {"attention: equal keys average the values",
       [](Context& c) {
         std::vector<float> keys(16, 0.5f);
         const Tensor q = c.put({1, 0, 0, 0, 0, 0, 0, 1}, {1, 1, 1, 8});
         const Tensor k = c.put(keys, {1, 2, 1, 8});
         const Tensor v = c.put({1, 2, 3, 4, 5, 6, 7, 8, 3, 2, 1, 0, -1, -2, -3, -4}, {1, 2, 1, 8});
         return std::pair{c.get(attention(c.be, q, k, v)),
                          std::vector<float>{2, 2, 2, 2, 2, 2, 2, 2}};
       }},
      {"softmax: [0, ln 2] gives [1/3, 2/3]",
       [](Context& c) {
         const Tensor x = c.put({0, std::numbers::ln2_v<float>}, {1, 2});
         return std::pair{c.get(softmax(c.be, x)), std::vector<float>{1.0f / 3, 2.0f / 3}};
       }},
      {"layer_norm: [1, 2, 3, 4] standardised",
       [](Context& c) {
         const Tensor x = c.put({1, 2, 3, 4}, {1, 4});
         const float s = 1.0f / std::sqrt(1.25f);
         return std::pair{c.get(layer_norm(c.be, x, {}, {}, 0.0f)),
                          std::vector<float>{-1.5f * s, -0.5f * s, 0.5f * s, 1.5f * s}};
       }},
      {"rms_norm: [3, 4] scaled to unit root mean square",
       [](Context& c) {
         const Tensor x = c.put({3, 4}, {1, 2});
         const float r = 1.0f / std::sqrt(12.5f);
         return std::pair{c.get(rms_norm(c.be, x, {}, 0.0f)), std::vector<float>{3 * r, 4 * r}};
       }},
      {"gelu and silu at 0 and 1",
       [](Context& c) {
         const Tensor x = c.put({0, 1}, {2});
         std::vector<float> got = c.get(gelu(c.be, x, false));
         const std::vector<float> more = c.get(silu(c.be, x));
         got.insert(got.end(), more.begin(), more.end());
         return std::pair{got, std::vector<float>{0, 0.8413447f, 0, 0.7310586f}};
       }},
      {"rope: a quarter turn maps (a, b) to (-b, a)",
       [](Context& c) {
         const Tensor x = c.put({1, 2, 3, 4}, {1, 1, 1, 4});
         const Tensor angles = c.put({std::numbers::pi_v<float> / 2, 0}, {1, 2});
         const Tensor angles_f32 = c.dtype == DType::f32 ? angles : cast(c.be, angles, DType::f32);
         return std::pair{c.get(apply_rope(c.be, x, angles_f32)), std::vector<float>{-2, 1, 3, 4}};
       }},
      {"conv2d: 1x1 identity kernel returns x",
       [](Context& c) {
         const Tensor x = c.put({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 2, 2});
         const Tensor w = c.put({1, 0, 0, 1}, {2, 1, 1, 2});
         return std::pair{c.get(conv2d(c.be, x, w, {}, {1, 1}, {0, 0})),
                          std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}};
       }},
      {"gated_residual: x + gate * y",
       [](Context& c) {
         const Tensor x = c.put({1, 1, 1, 1}, {1, 2, 2});
         const Tensor gate = c.put({2, -1}, {1, 1, 2});
         const Tensor y = c.put({1, 2, 3, 4}, {1, 2, 2});
         return std::pair{c.get(gated_residual(c.be, x, gate, y)), std::vector<float>{3, -1, 7, -3}};
       }},
  };
  return all;
}

}  // namespace

std::vector<SelfCheckResult> run_self_check(Backend& be) {
  std::vector<DType> dtypes{DType::f32};
  if (be.device().is_cuda()) dtypes.push_back(DType::bf16);
  std::vector<SelfCheckResult> results;
  for (const DType dtype : dtypes) {
    Context context{be, make_backend(Device::cpu()), dtype};
    // bf16 carries 8 significant bits: inputs and outputs round to ~4e-3 relative.
    const double tolerance = dtype == DType::f32 ? 1e-5 : 3e-2;
    for (const auto& [name, check] : checks()) {
      SelfCheckResult result{name + " (" + std::string(dtype_name(dtype)) + ")", 0, tolerance, {}};
      try {
        const auto [got, want] = check(context);
        result.max_error = max_abs_diff(got, want);
      } catch (const std::exception& e) {
        result.error = e.what();
      }
      results.push_back(result);
    }
  }
  return results;
}

}  // namespace ditserve
