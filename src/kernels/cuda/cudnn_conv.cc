// Convolutions through cuDNN's graph API on channels-last tensors, with the bias add
// fused as a pointwise op after the convolution.

#include <sstream>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cudnn_graph.h"
#include "kernels/cuda/library_ops.h"
#include "tensor/error.h"

namespace ditserve::cuda {
namespace {

enum Uid : std::int64_t { kX = 1, kW, kY, kBias };

// cuDNN's logical order is [N, C, *spatial]; ours is [N, *spatial, C].
std::vector<std::int64_t> ncsp(const std::vector<std::int64_t>& v) {
  std::vector<std::int64_t> out{v.front(), v.back()};
  out.insert(out.end(), v.begin() + 1, v.end() - 1);
  return out;
}

}  // namespace

void convolution(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& w,
                 const Tensor& bias, int nd, std::array<int, 3> stride,
                 std::array<int, 3> padding, bool allow_tf32) {
  // Plans are built on the current device (cuDNN loads the engines' kernels into its
  // context): it must be this backend's, whichever thread or device came before.
  DeviceGuard device(be.device_index());
  std::ostringstream key;
  key << "conv" << nd << "d " << dtype_name(x.dtype()) << shape_str(x.shape()) << shape_str(x.strides())
      << shape_str(w.shape()) << shape_str(out.shape()) << (bias.defined() ? " bias" : "");
  for (int i = 0; i < nd; ++i) key << " s" << stride[i] << " p" << padding[i];
  const bool exact = x.dtype() == DType::f32 && !allow_tf32;
  if (x.dtype() == DType::f32) key << (exact ? " exact" : " tf32");
  auto& cache = be.cudnn_plans();
  const cudnnDataType_t io = cudnn_type(x.dtype());
  if (!cache.contains(key.str())) {
    CudnnGraph g(be.cudnn());
    auto x_t = g.tensor({kX, io, ncsp(x.shape()), ncsp(x.strides())});
    auto w_t = g.tensor({kW, io, ncsp(w.shape()), ncsp(w.strides())});
    auto y_t = g.tensor({kY, io, ncsp(out.shape()), ncsp(out.strides())});
    const std::vector<std::int64_t> s(stride.begin(), stride.begin() + nd);
    const std::vector<std::int64_t> p(padding.begin(), padding.begin() + nd);
    if (bias.defined()) {
      auto conv_out = g.virtual_tensor(CUDNN_DATA_FLOAT, ncsp(out.shape()));
      g.convolution(x_t, w_t, conv_out, nd, s.data(), p.data(), CUDNN_DATA_FLOAT);
      std::vector<std::int64_t> bias_dims(nd + 2, 1), bias_strides(nd + 2, 1);
      bias_dims[1] = bias.size(0);
      auto bias_t = g.tensor({kBias, io, bias_dims, bias_strides});
      g.pointwise(CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, conv_out, bias_t, y_t);
    } else {
      g.convolution(x_t, w_t, y_t, nd, s.data(), p.data(), CUDNN_DATA_FLOAT);
    }
    cache.put(key.str(), g.build(key.str(), exact));
  }
  const auto plan = cache.get(key.str());
  if (plan == nullptr) {
    throw Error("cuDNN has no engine for " + key.str() +
                " (channels-last convolutions want channel counts that are multiples of 8)");
  }
  std::vector<std::int64_t> uids{kX, kW, kY};
  std::vector<void*> pointers{x.raw_data(), w.raw_data(), out.raw_data()};
  if (bias.defined()) {
    uids.push_back(kBias);
    pointers.push_back(bias.raw_data());
  }
  try {
    execute(be, *plan, uids, pointers);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (" + key.str() + " on cuda:" +
                std::to_string(be.device_index()) + ")");
  }
}

}  // namespace ditserve::cuda
