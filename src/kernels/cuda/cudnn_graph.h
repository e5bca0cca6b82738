#pragma once
// A thin RAII layer over cuDNN's backend (graph) API: build an operation graph from
// tensors and operations, pick an engine by cuDNN's heuristics, and execute the plan with
// device pointers bound by tensor uid. Used by attention (the fused flash-attention
// pattern) and convolution. Plans are cached per backend by a caller-chosen key, since
// finalising one can take milliseconds (runtime-compiled engines).
//
// build() keeps the first engine configuration of cuDNN's heuristics that finalises (what
// convolution uses). The first is not always the fastest (STDiT3's 720p spatial attention
// ran ~15% slower than PyTorch's cuDNN SDPA call on the same shape), so build_candidates()
// returns up to N finalised plans in heuristic order, for attention to time at its first
// use (CudnnTuningOptions: with DITSERVE_CUDNN_AUTOTUNE=1; by default the first, as before).

#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor/dtype.h"

namespace ditserve::cuda {

class CudaBackend;

// Owns one cudnnBackendDescriptor_t.
class CudnnDescriptor {
 public:
  explicit CudnnDescriptor(cudnnBackendDescriptorType_t type);
  ~CudnnDescriptor();
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;

  cudnnBackendDescriptor_t get() const { return desc_; }
  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, std::int64_t count,
           const void* values);
  // Returns the status instead of throwing (engine configurations may be refused).
  cudnnStatus_t try_finalize();
  void finalize();

 private:
  cudnnBackendDescriptor_t desc_ = nullptr;
};

cudnnDataType_t cudnn_type(DType dtype);

struct TensorSpec {
  std::int64_t uid;
  cudnnDataType_t type;
  std::vector<std::int64_t> dims;
  std::vector<std::int64_t> strides;
  bool is_virtual = false;
  bool by_value = false;  // a host scalar passed in the variant pack
};

// Collects tensors and operations, then finalises the graph into an execution plan.
class CudnnGraph {
 public:
  explicit CudnnGraph(cudnnHandle_t handle) : handle_(handle) {}

  // Returns the tensor's descriptor (owned by the graph).
  cudnnBackendDescriptor_t tensor(const TensorSpec& spec);
  // Next free uid for a virtual tensor.
  std::int64_t next_virtual_uid() { return next_virtual_uid_++; }
  cudnnBackendDescriptor_t virtual_tensor(cudnnDataType_t type, std::vector<std::int64_t> dims);

  void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c,
              cudnnBackendDescriptor_t m_override = nullptr,
              cudnnBackendDescriptor_t n_override = nullptr,
              cudnnBackendDescriptor_t k_override = nullptr, bool with_padding = false);
  // y = mode(x[, b[, t]]); `axis` only for GEN_INDEX.
  void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t compute, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t y,
                 cudnnBackendDescriptor_t t = nullptr, std::int64_t axis = -1);
  void reduction(cudnnReduceTensorOp_t op, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y);
  void convolution(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t w,
                   cudnnBackendDescriptor_t y, int spatial_dims, const std::int64_t* stride,
                   const std::int64_t* padding, cudnnDataType_t compute);

  // Finalises the graph and the first engine configuration cuDNN's heuristics offer that
  // finalises; nullptr if none does. `describe` names the graph in errors. With
  // exact_f32, engines that would round f32 inputs (TF32 tensor cores) are skipped.
  // Throws if cuDNN rejects the operation graph itself.
  struct Plan;
  std::shared_ptr<Plan> build(const std::string& describe, bool exact_f32);
  // Like build(), but up to `max_plans` finalised plans, in the order of heuristics mode A
  // (those of the fallback mode only when mode A's finalise none); empty if none does.
  // build() is build_candidates(describe, exact_f32, 1).front(). The plans share the graph.
  std::vector<std::shared_ptr<Plan>> build_candidates(const std::string& describe,
                                                      bool exact_f32, int max_plans);

 private:
  cudnnHandle_t handle_;
  std::vector<std::unique_ptr<CudnnDescriptor>> tensors_;
  std::vector<std::unique_ptr<CudnnDescriptor>> ops_;
  std::vector<std::unique_ptr<CudnnDescriptor>> op_params_;
  std::int64_t next_virtual_uid_ = 1000;
};

struct CudnnGraph::Plan {
  // The graph, its tensors and operations (shared by the candidate plans of one graph),
  // and the engine configuration: kept alive for the plan's lifetime rather than relying
  // on cuDNN copying them. Declared before `plan`, so they outlive it.
  std::shared_ptr<std::vector<std::unique_ptr<CudnnDescriptor>>> graph;
  std::vector<std::unique_ptr<CudnnDescriptor>> keep_alive;
  std::unique_ptr<CudnnDescriptor> plan;
  std::int64_t workspace_bytes = 0;
  std::string engine;  // for logs: which heuristic result and engine (global index)
};

// Executes a plan on be's stream. uids and pointers pair up (device pointers, or host
// pointers for by-value tensors). Throws if cuDNN refuses to launch it.
void execute(CudaBackend& be, const CudnnGraph::Plan& plan, const std::vector<std::int64_t>& uids,
             const std::vector<void*>& pointers);
// execute() returning cuDNN's status instead of throwing (autotuning skips a candidate
// that refuses to launch).
cudnnStatus_t try_execute(CudaBackend& be, const CudnnGraph::Plan& plan,
                          const std::vector<std::int64_t>& uids, const std::vector<void*>& pointers);

// How a backend picks among cuDNN's engine configurations; read once per backend (its
// CudnnPlanCache).
struct CudnnTuningOptions {
  // Attention times its candidate plans at a problem's first use and keeps the fastest;
  // false keeps the first configuration of the stats pattern (ditserve's choice before).
  // Off by default until it has been checked and timed on a GPU (docs/PERFORMANCE.md).
  bool autotune = false;
  // Print heuristics results, candidate timings and the pick to stderr.
  bool debug = false;

  // DITSERVE_CUDNN_AUTOTUNE (default 0; "0" or "1", anything else throws InvalidArgument
  // naming it) and DITSERVE_CUDNN_DEBUG (on when set to anything but "" or "0").
  static CudnnTuningOptions from_env();
};

// DITSERVE_CUDNN_DEBUG's reading (see CudnnTuningOptions::debug).
bool cudnn_debug_from_env();

// Per-backend cache of plans by key; a null entry records "no engine for this graph".
class CudnnPlanCache {
 public:
  CudnnPlanCache() : options_(CudnnTuningOptions::from_env()) {}
  explicit CudnnPlanCache(CudnnTuningOptions options) : options_(options) {}

  const CudnnTuningOptions& options() const { return options_; }
  bool contains(const std::string& key) const { return plans_.count(key) != 0; }
  std::shared_ptr<CudnnGraph::Plan> get(const std::string& key) const { return plans_.at(key); }
  void put(const std::string& key, std::shared_ptr<CudnnGraph::Plan> plan) {
    plans_[key] = std::move(plan);
  }
  // Keys planned so far (null entries included).
  std::size_t size() const { return plans_.size(); }

 private:
  CudnnTuningOptions options_;
  std::unordered_map<std::string, std::shared_ptr<CudnnGraph::Plan>> plans_;
};

}  // namespace ditserve::cuda
