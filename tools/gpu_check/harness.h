#pragma once
// gpu_check's harness: a Case is one op call on random inputs; the harness runs it on the
// CPU backend (f32 reference) and on the CUDA backend in each of the case's dtypes, and
// reports the relative error ||cuda - cpu|| / ||cpu||. For a 16-bit dtype the reference
// sees the same inputs rounded to that dtype, so the error measures the CUDA op alone.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"

namespace ditserve::gpu_check {

enum class InputKind {
  floating,  // random, cast to the run's dtype on the GPU
  f32,       // random or given, always f32 (rope angles, timesteps)
  ids,       // random integers in [0, limit), dtype i32 or i64
  lengths,   // i32 key lengths in [1, limit], the first one equal to limit
};

struct Input {
  InputKind kind = InputKind::floating;
  Shape shape;
  float scale = 1.0f;  // random floats are uniform in [offset - scale, offset + scale)
  float offset = 0.0f;
  std::int64_t limit = 0;
  DType int_dtype = DType::i32;
  Tensor given;  // host f32 values to use instead of random ones (kind f32)
};

Input floating(Shape shape, float scale = 1.0f, float offset = 0.0f);
Input fixed_f32(Shape shape, float scale = 1.0f, float offset = 0.0f);
Input given_f32(Tensor host_values);
Input ids(Shape shape, std::int64_t limit, DType dtype = DType::i32);
Input lengths(std::int64_t batch, std::int64_t max_length);

// Runs the op on `be` with the case's inputs (in order) and returns its output.
using OpFn = std::function<Tensor(Backend& be, const std::vector<Tensor>& in)>;

struct Case {
  std::string op;     // public op name, e.g. "layer_norm"
  std::string shape;  // what makes this case distinct, e.g. "x[4,50,1152] affine"
  std::vector<Input> inputs;
  OpFn run;
  std::vector<DType> dtypes{DType::f32, DType::bf16};
  bool exact = false;  // data movement: results must match bit for bit
  double f32_threshold = 0;  // > 0: replaces f32's 1e-5 (ops asked to compute in TF32)
};

struct Result {
  std::string op;
  std::string dtype;
  std::string shape;
  double rel_error = 0;
  double threshold = 0;
  bool pass = false;
  std::string error;  // exception text or mismatch detail; empty when it ran cleanly
};

// Thresholds of issue 3: bf16 <= 1e-2, f32 <= 1e-5.
double threshold_for(DType dtype, bool exact);

class Harness {
 public:
  // `target` is the backend under test: cuda:N, or cpu:1 to self-test the harness and
  // the case definitions on a machine without a GPU (every error must then be 0).
  explicit Harness(Device target);
  Backend& host() { return *host_; }
  Backend& gpu() { return *gpu_; }
  cuda::CudaBackend& cuda() { return cuda::as_cuda(*gpu_); }

  // One Result per dtype of the case; never throws (failures become results).
  std::vector<Result> run(const Case& c, std::uint64_t seed);

 private:
  std::unique_ptr<Backend> host_;
  std::unique_ptr<Backend> gpu_;
};

// Case lists, by op family.
void add_math_cases(std::vector<Case>& cases);       // linear, matmul, attention, conv
void add_row_cases(std::vector<Case>& cases);        // norms, activations, softmax, rope
void add_elementwise_cases(std::vector<Case>& cases);  // add, mul, gated, embeddings
void add_data_cases(std::vector<Case>& cases, Harness& h);  // copies, casts, transfers
void add_gemm_plan_cases(std::vector<Case>& cases);  // GEMM plan cache and autotuning

// The caching allocator must not grow once a repeated workload has warmed it up.
Result check_pool_steady(Harness& h);
// Captured work (CUDA graphs): replays equal eager steps bit for bit; a failed capture is
// clean (graph_check.cc).
std::vector<Result> check_captured_work(Harness& h);

}  // namespace ditserve::gpu_check
