#include "kernels/cuda/cudnn_graph.h"

#include <array>
#include <cstdlib>
#include <iostream>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/gemm_plan.h"
#include "tensor/cuda/stream.h"
#include "tensor/error.h"

namespace ditserve::cuda {
namespace {

void check(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) {
    throw Error(std::string("cuDNN: ") + what + " failed: " + cudnnGetErrorString(status));
  }
}

}  // namespace

CudnnDescriptor::CudnnDescriptor(cudnnBackendDescriptorType_t type) {
  check(cudnnBackendCreateDescriptor(type, &desc_), "cudnnBackendCreateDescriptor");
}

CudnnDescriptor::~CudnnDescriptor() {
  if (desc_ != nullptr) cudnnBackendDestroyDescriptor(desc_);
}

void CudnnDescriptor::set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                          std::int64_t count, const void* values) {
  const cudnnStatus_t status = cudnnBackendSetAttribute(desc_, name, type, count, values);
  if (status != CUDNN_STATUS_SUCCESS) {
    throw Error("cuDNN: setting backend attribute " + std::to_string(static_cast<int>(name)) +
                " failed: " + cudnnGetErrorString(status));
  }
}

cudnnStatus_t CudnnDescriptor::try_finalize() { return cudnnBackendFinalize(desc_); }

void CudnnDescriptor::finalize() { check(try_finalize(), "cudnnBackendFinalize"); }

cudnnDataType_t cudnn_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    case DType::f16: return CUDNN_DATA_HALF;
    case DType::i32: return CUDNN_DATA_INT32;
    case DType::i64: return CUDNN_DATA_INT64;
    case DType::u8: return CUDNN_DATA_UINT8;
  }
  throw Error("cudnn_type: unknown dtype");
}

cudnnBackendDescriptor_t CudnnGraph::tensor(const TensorSpec& spec) {
  auto desc = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const std::int64_t alignment = 16;
  const bool is_virtual = spec.is_virtual, by_value = spec.by_value;
  desc->set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &spec.type);
  desc->set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64,
            static_cast<std::int64_t>(spec.dims.size()), spec.dims.data());
  desc->set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64,
            static_cast<std::int64_t>(spec.strides.size()), spec.strides.data());
  desc->set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &spec.uid);
  desc->set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
  desc->set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
  if (by_value) desc->set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
  desc->finalize();
  tensors_.push_back(std::move(desc));
  return tensors_.back()->get();
}

cudnnBackendDescriptor_t CudnnGraph::virtual_tensor(cudnnDataType_t type,
                                                    std::vector<std::int64_t> dims) {
  std::vector<std::int64_t> strides(dims.size());
  std::int64_t s = 1;
  for (std::size_t i = dims.size(); i-- > 0;) {
    strides[i] = s;
    s *= dims[i];
  }
  return tensor({next_virtual_uid(), type, std::move(dims), std::move(strides), true, false});
}

void CudnnGraph::matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                        cudnnBackendDescriptor_t c, cudnnBackendDescriptor_t m_override,
                        cudnnBackendDescriptor_t n_override, cudnnBackendDescriptor_t k_override,
                        bool with_padding) {
  auto desc = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  desc->set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  if (with_padding) {
    const double padding = 0.0;
    desc->set(CUDNN_ATTR_MATMUL_PADDING_VALUE, CUDNN_TYPE_DOUBLE, 1, &padding);
  }
  desc->finalize();
  auto op = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
  op->set(CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a);
  op->set(CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
  op->set(CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c);
  cudnnBackendDescriptor_t raw = desc->get();
  op->set(CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw);
  if (m_override != nullptr)
    op->set(CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &m_override);
  if (n_override != nullptr)
    op->set(CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n_override);
  if (k_override != nullptr)
    op->set(CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &k_override);
  op->finalize();
  op_params_.push_back(std::move(desc));
  ops_.push_back(std::move(op));
}

void CudnnGraph::pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t compute,
                           cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                           cudnnBackendDescriptor_t y, cudnnBackendDescriptor_t t,
                           std::int64_t axis) {
  auto desc = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  desc->set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
  desc->set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  if (axis >= 0) desc->set(CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
  desc->finalize();
  auto op = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
  cudnnBackendDescriptor_t raw = desc->get();
  op->set(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw);
  op->set(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
  if (b != nullptr) op->set(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
  if (t != nullptr) op->set(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t);
  op->set(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
  op->finalize();
  op_params_.push_back(std::move(desc));
  ops_.push_back(std::move(op));
}

void CudnnGraph::reduction(cudnnReduceTensorOp_t reduce, cudnnBackendDescriptor_t x,
                           cudnnBackendDescriptor_t y) {
  auto desc = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  desc->set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &reduce);
  desc->set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  desc->finalize();
  auto op = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
  cudnnBackendDescriptor_t raw = desc->get();
  op->set(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
  op->set(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
  op->set(CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw);
  op->finalize();
  op_params_.push_back(std::move(desc));
  ops_.push_back(std::move(op));
}

void CudnnGraph::convolution(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t w,
                             cudnnBackendDescriptor_t y, int spatial_dims,
                             const std::int64_t* stride, const std::int64_t* padding,
                             cudnnDataType_t compute) {
  auto desc = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const std::int64_t dims = spatial_dims;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const std::array<std::int64_t, 3> dilation{1, 1, 1};
  desc->set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  desc->set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  desc->set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims);
  desc->set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, dims, dilation.data());
  desc->set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, dims, stride);
  desc->set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, dims, padding);
  desc->set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, dims, padding);
  desc->finalize();
  auto op = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
  cudnnBackendDescriptor_t raw = desc->get();
  const float alpha = 1.0f, beta = 0.0f;
  op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
  op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w);
  op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
  op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw);
  op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
  op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
  op->finalize();
  op_params_.push_back(std::move(desc));
  ops_.push_back(std::move(op));
}

namespace {

// True if the engine behind `config` converts f32 inputs down (TF32 tensor cores).
bool rounds_f32_inputs(cudnnBackendDescriptor_t config) {
  CudnnDescriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  cudnnBackendDescriptor_t raw = engine.get();
  std::int64_t count = 0;
  if (cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                               1, &count, &raw) != CUDNN_STATUS_SUCCESS) {
    return true;  // unknown: treat as inexact
  }
  std::array<cudnnBackendNumericalNote_t, CUDNN_NUMERICAL_NOTE_TYPE_COUNT> notes{};
  if (cudnnBackendGetAttribute(raw, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               static_cast<std::int64_t>(notes.size()), &count,
                               notes.data()) != CUDNN_STATUS_SUCCESS) {
    return true;
  }
  for (std::int64_t i = 0; i < count; ++i) {
    if (notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE ||
        notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS) {
      return true;
    }
  }
  return false;
}

// cuDNN's global index of the engine behind `config`; -1 if it cannot be read.
std::int64_t engine_global_index(cudnnBackendDescriptor_t config) {
  CudnnDescriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  cudnnBackendDescriptor_t raw = engine.get();
  std::int64_t count = 0, index = -1;
  if (cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                               1, &count, &raw) != CUDNN_STATUS_SUCCESS ||
      cudnnBackendGetAttribute(raw, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &count,
                               &index) != CUDNN_STATUS_SUCCESS) {
    return -1;
  }
  return index;
}

}  // namespace

bool cudnn_debug_from_env() {
  const char* value = std::getenv("DITSERVE_CUDNN_DEBUG");
  return value != nullptr && value[0] != '\0' && std::string(value) != "0";
}

CudnnTuningOptions CudnnTuningOptions::from_env() {
  CudnnTuningOptions options;
  options.autotune = parse_env_flag("DITSERVE_CUDNN_AUTOTUNE", std::getenv("DITSERVE_CUDNN_AUTOTUNE"),
                                    options.autotune);
  options.debug = cudnn_debug_from_env();
  return options;
}

std::shared_ptr<CudnnGraph::Plan> CudnnGraph::build(const std::string& describe, bool exact_f32) {
  std::vector<std::shared_ptr<Plan>> plans = build_candidates(describe, exact_f32, 1);
  return plans.empty() ? nullptr : std::move(plans.front());
}

std::vector<std::shared_ptr<CudnnGraph::Plan>> CudnnGraph::build_candidates(
    const std::string& describe, bool exact_f32, int max_plans) {
  auto graph_owner = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  CudnnDescriptor& graph = *graph_owner;
  std::vector<cudnnBackendDescriptor_t> ops;
  for (const auto& op : ops_) ops.push_back(op->get());
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
            static_cast<std::int64_t>(ops.size()), ops.data());
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_);
  const cudnnStatus_t graph_status = graph.try_finalize();
  if (graph_status != CUDNN_STATUS_SUCCESS) {
    throw Error("cuDNN: operation graph for " + describe + " rejected: " +
                cudnnGetErrorString(graph_status));
  }
  cudnnBackendDescriptor_t raw_graph = graph.get();
  // The graph and everything it refers to, shared by the plans made from it.
  auto graph_alive = std::make_shared<std::vector<std::unique_ptr<CudnnDescriptor>>>();
  graph_alive->push_back(std::move(graph_owner));
  for (auto& d : ops_) graph_alive->push_back(std::move(d));
  for (auto& d : op_params_) graph_alive->push_back(std::move(d));
  for (auto& d : tensors_) graph_alive->push_back(std::move(d));
  ops_.clear();
  op_params_.clear();
  tensors_.clear();
  // DITSERVE_CUDNN_DEBUG=1 prints why no engine configuration finalised.
  const bool debug = cudnn_debug_from_env();
  std::vector<std::shared_ptr<Plan>> plans;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    if (!plans.empty()) break;  // the fallback mode only when mode A gave nothing
    CudnnDescriptor heuristics(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    heuristics.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw_graph);
    heuristics.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    const cudnnStatus_t heur_status = heuristics.try_finalize();
    if (debug) std::cerr << "cuDNN " << describe << ": heuristics mode " << mode << ": " << cudnnGetErrorString(heur_status) << "\n";
    if (heur_status != CUDNN_STATUS_SUCCESS) continue;
    constexpr int kMaxConfigs = 16;
    std::vector<std::unique_ptr<CudnnDescriptor>> configs;
    std::vector<cudnnBackendDescriptor_t> raw_configs;
    for (int i = 0; i < kMaxConfigs; ++i) {
      configs.push_back(std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
      raw_configs.push_back(configs.back()->get());
    }
    std::int64_t returned = 0;
    if (cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, kMaxConfigs, &returned,
                                 raw_configs.data()) != CUDNN_STATUS_SUCCESS) {
      if (debug) std::cerr << "  results query failed\n";
      continue;
    }
    if (debug) std::cerr << "  " << returned << " configurations\n";
    for (std::int64_t i = 0; i < returned; ++i) {
      if (static_cast<int>(plans.size()) >= max_plans) break;
      if (exact_f32 && rounds_f32_inputs(raw_configs[i])) continue;
      auto plan = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      plan->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_);
      plan->set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw_configs[i]);
      const cudnnStatus_t plan_status = plan->try_finalize();
      if (debug) std::cerr << "  config " << i << ": " << cudnnGetErrorString(plan_status) << "\n";
      if (plan_status != CUDNN_STATUS_SUCCESS) continue;
      auto result = std::make_shared<Plan>();
      std::int64_t count = 0;
      cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                               CUDNN_TYPE_INT64, 1, &count, &result->workspace_bytes);
      result->engine = (mode == CUDNN_HEUR_MODE_A ? "heuristic A #" : "fallback #") +
                       std::to_string(i) + " (engine " +
                       std::to_string(engine_global_index(raw_configs[i])) + ")";
      result->graph = graph_alive;
      result->keep_alive.push_back(std::move(configs[i]));
      result->plan = std::move(plan);
      plans.push_back(std::move(result));
    }
  }
  return plans;
}

cudnnStatus_t try_execute(CudaBackend& be, const CudnnGraph::Plan& plan,
                          const std::vector<std::int64_t>& uids, const std::vector<void*>& pointers) {
  CudnnDescriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  void* workspace = plan.workspace_bytes > 0
                        ? be.workspace(static_cast<std::size_t>(plan.workspace_bytes))
                        : nullptr;
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64,
           static_cast<std::int64_t>(uids.size()), uids.data());
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
           static_cast<std::int64_t>(pointers.size()), pointers.data());
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  pack.finalize();
  DeviceGuard guard(be.device_index());
  return cudnnBackendExecute(be.cudnn(), plan.plan->get(), pack.get());
}

void execute(CudaBackend& be, const CudnnGraph::Plan& plan, const std::vector<std::int64_t>& uids,
             const std::vector<void*>& pointers) {
  check(try_execute(be, plan, uids, pointers), "cudnnBackendExecute");
}

}  // namespace ditserve::cuda
