// Attention through cuDNN's fused flash-attention engine. The graph below is the pattern
// that engine recognises (the same one cuDNN's frontend emits for SDPA inference):
//   S = Q K^T; S *= scale; [S += bias]; [S = padded ? S : -inf];
//   P = exp(S - max(S)) / sum(exp(S - max(S)));  O = P V
// (plus the softmax statistics max + log(sum) as a virtual output).
// with key lengths expressed as cuDNN's padding mask (per-batch sequence lengths).

#include <cmath>
#include <limits>
#include <sstream>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cudnn_graph.h"
#include "kernels/cuda/library_ops.h"
#include "tensor/cuda/cuda_check.h"

namespace ditserve::cuda {
namespace {

enum Uid : std::int64_t {
  kQ = 1, kK, kV, kO, kScale, kBias, kSeqKv, kSeqQ, kNegInf,
};

__global__ void fill_i32_kernel(std::int32_t* out, std::int64_t n, std::int32_t value) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = value;
}

// Logical [B, H, S, D] dims with the strides of a [B, S, H, D] view.
std::vector<std::int64_t> bhsd_strides(const Tensor& t) {
  return {t.stride(0), t.stride(2), t.stride(1), t.stride(3)};
}

std::string plan_key(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                     const Tensor& key_lengths, const Tensor& bias) {
  std::ostringstream key;
  key << "sdpa " << dtype_name(q.dtype());
  for (const Tensor* t : {&q, &k, &v, &out, &bias}) {
    if (!t->defined()) {
      key << " -";
      continue;
    }
    key << " " << shape_str(t->shape()) << shape_str(t->strides());
  }
  key << (key_lengths.defined() ? " lengths" : " full");
  return key.str();
}

std::shared_ptr<CudnnGraph::Plan> build_plan(CudaBackend& be, const Tensor& q, const Tensor& k,
                                             const Tensor& v, const Tensor& out,
                                             bool padded, const Tensor& bias,
                                             const std::string& key) {
  const std::int64_t b = q.size(0), sq = q.size(1), h = q.size(2), d = q.size(3);
  const std::int64_t sk = k.size(1);
  const cudnnDataType_t io = cudnn_type(q.dtype());
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  CudnnGraph g(be.cudnn());

  auto q_t = g.tensor({kQ, io, {b, h, sq, d}, bhsd_strides(q)});
  // K enters the first matmul transposed: [B, H, D, Sk].
  auto kt_t = g.tensor({kK, io, {b, h, d, sk}, {k.stride(0), k.stride(2), k.stride(3), k.stride(1)}});
  auto v_t = g.tensor({kV, io, {b, h, sk, d}, bhsd_strides(v)});
  auto o_t = g.tensor({kO, io, {b, h, sq, d}, bhsd_strides(out)});
  auto scale_t = g.tensor({kScale, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true});

  cudnnBackendDescriptor_t seq_q = nullptr, seq_kv = nullptr;
  if (padded) {
    seq_kv = g.tensor({kSeqKv, CUDNN_DATA_INT32, {b, 1, 1, 1}, {1, 1, 1, 1}});
    seq_q = g.tensor({kSeqQ, CUDNN_DATA_INT32, {b, 1, 1, 1}, {1, 1, 1, 1}});
  }
  const std::vector<std::int64_t> scores{b, h, sq, sk};
  auto s = g.virtual_tensor(f32, scores);
  g.matmul(q_t, kt_t, s, seq_q, seq_kv, nullptr, padded);
  auto scaled = g.virtual_tensor(f32, scores);
  g.pointwise(CUDNN_POINTWISE_MUL, f32, s, scale_t, scaled);
  auto last = scaled;
  if (bias.defined()) {
    std::vector<std::int64_t> bias_dims(bias.shape().begin(), bias.shape().end());
    std::vector<std::int64_t> bias_strides(bias.strides().begin(), bias.strides().end());
    auto bias_t = g.tensor({kBias, cudnn_type(bias.dtype()), bias_dims, bias_strides});
    auto biased = g.virtual_tensor(f32, scores);
    g.pointwise(CUDNN_POINTWISE_ADD, f32, last, bias_t, biased);
    last = biased;
  }
  if (padded) {
    auto row = g.virtual_tensor(CUDNN_DATA_INT32, scores);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, last, nullptr, row, nullptr, 2);
    auto col = g.virtual_tensor(CUDNN_DATA_INT32, scores);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, last, nullptr, col, nullptr, 3);
    auto row_ok = g.virtual_tensor(CUDNN_DATA_BOOLEAN, scores);
    g.pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, row, seq_q, row_ok);
    auto col_ok = g.virtual_tensor(CUDNN_DATA_BOOLEAN, scores);
    g.pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, col, seq_kv, col_ok);
    auto keep = g.virtual_tensor(CUDNN_DATA_BOOLEAN, scores);
    g.pointwise(CUDNN_POINTWISE_LOGICAL_AND, CUDNN_DATA_BOOLEAN, row_ok, col_ok, keep);
    auto neg_inf = g.tensor({kNegInf, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true});
    auto masked = g.virtual_tensor(f32, scores);
    g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, last, neg_inf, masked, keep);
    last = masked;
  }
  const std::vector<std::int64_t> rows{b, h, sq, 1};
  auto row_max = g.virtual_tensor(f32, rows);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, last, row_max);
  auto centered = g.virtual_tensor(f32, scores);
  g.pointwise(CUDNN_POINTWISE_SUB, f32, last, row_max, centered);
  auto exps = g.virtual_tensor(f32, scores);
  g.pointwise(CUDNN_POINTWISE_EXP, f32, centered, nullptr, exps);
  auto row_sum = g.virtual_tensor(f32, rows);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, exps, row_sum);
  // The softmax statistics (max + log(sum)) are part of the pattern the engine matches,
  // even for inference, where they stay virtual.
  auto log_sum = g.virtual_tensor(f32, rows);
  g.pointwise(CUDNN_POINTWISE_LOG, f32, row_sum, nullptr, log_sum);
  auto stats = g.virtual_tensor(f32, rows);
  g.pointwise(CUDNN_POINTWISE_ADD, f32, row_max, log_sum, stats);
  // The engine wants the probabilities in the I/O type for the second matmul.
  auto probs = g.virtual_tensor(io, scores);
  g.pointwise(CUDNN_POINTWISE_DIV, f32, exps, row_sum, probs);
  g.matmul(probs, v_t, o_t, seq_q, nullptr, seq_kv, false);
  return g.build(key, /*exact_f32=*/false);
}

}  // namespace

bool attention_cudnn(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                     const Tensor& v, float scale, const Tensor& key_lengths,
                     const Tensor& bias) {
  if (q.dtype() != DType::bf16 && q.dtype() != DType::f16) return false;
  if (q.size(3) % 8 != 0 || q.size(3) > 256) return false;
  if (bias.defined() && bias.dtype() != q.dtype()) return false;
  const std::string key = plan_key(q, k, v, out, key_lengths, bias);
  auto& cache = be.cudnn_plans();
  if (!cache.contains(key)) {
    cache.put(key, build_plan(be, q, k, v, out, key_lengths.defined(), bias, key));
  }
  const auto plan = cache.get(key);
  if (plan == nullptr) return false;

  float scale_value = scale;
  float neg_inf = -std::numeric_limits<float>::infinity();
  std::vector<std::int64_t> uids{kQ, kK, kV, kO, kScale};
  std::vector<void*> pointers{q.raw_data(), k.raw_data(), v.raw_data(), out.raw_data(), &scale_value};
  if (bias.defined()) {
    uids.push_back(kBias);
    pointers.push_back(bias.raw_data());
  }
  Tensor seq_q;
  if (key_lengths.defined()) {
    const std::int64_t b = q.size(0);
    seq_q = be.empty({b}, DType::i32);
    {
      DeviceGuard guard(be.device_index());
      fill_i32_kernel<<<static_cast<unsigned>((b + 255) / 256), 256, 0, be.stream()>>>(
          seq_q.data<std::int32_t>(), b, static_cast<std::int32_t>(q.size(1)));
      DITSERVE_CUDA_CHECK_LAUNCH();
    }
    uids.insert(uids.end(), {kSeqKv, kSeqQ, kNegInf});
    pointers.insert(pointers.end(), {key_lengths.raw_data(), seq_q.raw_data(), &neg_inf});
  }
  execute(be, *plan, uids, pointers);
  return true;
}

}  // namespace ditserve::cuda
