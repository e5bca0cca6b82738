#include "cli/relative_error.h"

#include <cmath>
#include <memory>

#include "kernels/copy.h"
#include "tensor/error.h"

namespace ditserve::cli {

std::vector<float> host_values(Backend& be, const Tensor& t) {
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  return transfer(be, t, *host).to_vector_f32();
}

double relative_l2(const std::vector<float>& a, const std::vector<float>& b) {
  DITSERVE_CHECK(a.size() == b.size(), "relative_l2: ", a.size(), " vs ", b.size(), " values");
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    diff += d * d;
    norm += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

}  // namespace ditserve::cli
