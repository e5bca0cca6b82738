// cuBLASLt GEMMs for linear() and matmul(). Row-major ditserve tensors are handed to
// column-major cuBLASLt as their transposes: out[M,N] = x[M,K] w[N,K]^T becomes
// out^T[N,M] = w x^T, so cuBLASLt's A is w (transposed), B is x, and the bias is per
// row of the column-major result, which is what CUBLASLT_EPILOGUE_BIAS applies.
// linear_residual adds C (the residual, beta = 1) in the same epilogue: D = A B + C + bias.
//
// Each distinct problem (GemmPlanKey: shapes, strides, epilogue, operand alignments) is
// planned once per backend: descriptors, layouts and algorithm are cached in the backend's
// GemmPlanCache. With autotuning (the default) the first use times up to
// kGemmMaxCandidates heuristic algorithms on a scratch output and keeps the fastest;
// DITSERVE_GEMM_DEBUG=1 prints each plan.

#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/candidate_timing.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/library_ops.h"
#include "kernels/gemm_plan.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw Error(std::string("cuBLASLt: ") + what + " failed with status " +
                std::to_string(static_cast<int>(status)));
  }
}

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::f16: return CUDA_R_16F;
    default: throw InvalidArgument("cuBLASLt GEMM: unsupported dtype " + std::string(dtype_name(dtype)));
  }
}

// RAII holders for the cuBLASLt descriptors of one plan.
struct MatmulDesc {
  cublasLtMatmulDesc_t desc = nullptr;
  MatmulDesc() { check(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "MatmulDescCreate"); }
  ~MatmulDesc() { cublasLtMatmulDescDestroy(desc); }
  MatmulDesc(const MatmulDesc&) = delete;
  MatmulDesc& operator=(const MatmulDesc&) = delete;
  template <typename T>
  void set(cublasLtMatmulDescAttributes_t attr, const T& value) {
    check(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)), "MatmulDescSetAttribute");
  }
};

struct Layout {
  cublasLtMatrixLayout_t layout = nullptr;
  // Column-major rows x cols with leading dimension ld, optionally batched.
  Layout(cudaDataType_t type, std::int64_t rows, std::int64_t cols, std::int64_t ld,
         std::int64_t batch = 1, std::int64_t batch_stride = 0) {
    // With a single column the leading dimension is never used, but must be >= rows.
    if (cols == 1) ld = std::max(ld, rows);
    check(cublasLtMatrixLayoutCreate(&layout, type, rows, cols, ld), "MatrixLayoutCreate");
    if (batch > 1) {
      const int count = static_cast<int>(batch);
      check(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)),
            "MatrixLayoutSetAttribute(batch)");
      check(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                             &batch_stride, sizeof(batch_stride)),
            "MatrixLayoutSetAttribute(batch stride)");
    }
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(layout); }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
};

// Views may start anywhere, and the heuristic otherwise assumes 256-byte aligned operands.
std::uint32_t alignment_of(const void* ptr) {
  return pointer_alignment(reinterpret_cast<std::uintptr_t>(ptr));
}

struct Preference {
  cublasLtMatmulPreference_t pref = nullptr;
  // Algorithms for operands of the key's alignments that fit our workspace.
  explicit Preference(const GemmPlanKey& key) {
    check(cublasLtMatmulPreferenceCreate(&pref), "MatmulPreferenceCreate");
    set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kWorkspaceBytes);
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a);
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b);
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c);
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d);
  }
  ~Preference() { cublasLtMatmulPreferenceDestroy(pref); }
  Preference(const Preference&) = delete;
  Preference& operator=(const Preference&) = delete;
  template <typename T>
  void set(cublasLtMatmulPreferenceAttributes_t attr, const T& value) {
    check(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)),
          "MatmulPreferenceSetAttribute");
  }
};

// One column-major GEMM D = op(A) op(B) (+ C, + bias, activation), batched with strides.
// C is read only when the caller passes one (beta = 1), with its own ldc and batch stride.
struct GemmProblem {
  DType dtype;
  bool transa, transb;
  std::int64_t m, n, k;
  std::int64_t lda, ldb, ldd, ldc = 0;
  std::int64_t batch = 1, stride_a = 0, stride_b = 0, stride_d = 0, stride_c = 0;
  std::int64_t stride_bias = 0;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
};

}  // namespace

// One problem's cuBLASLt objects, made at its first use and reused by every call with its
// GemmPlanKey. The bias pointer is a descriptor attribute, so run_gemm sets it per call.
struct GemmPlan {
  MatmulDesc desc;
  Layout a, b, c, d;  // C's layout is D's when the problem has no C
  bool has_c;
  cublasLtMatmulAlgo_t algo{};

  GemmPlan(const GemmProblem& p, bool with_c, bool with_bias)
      : a(cuda_type(p.dtype), p.transa ? p.k : p.m, p.transa ? p.m : p.k, p.lda, p.batch,
          p.stride_a),
        b(cuda_type(p.dtype), p.transb ? p.n : p.k, p.transb ? p.k : p.n, p.ldb, p.batch,
          p.stride_b),
        c(cuda_type(p.dtype), p.m, p.n, with_c ? p.ldc : p.ldd, p.batch,
          with_c ? p.stride_c : p.stride_d),
        d(cuda_type(p.dtype), p.m, p.n, p.ldd, p.batch, p.stride_d),
        has_c(with_c) {
    const cublasOperation_t ta = p.transa ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t tb = p.transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    desc.set(CUBLASLT_MATMUL_DESC_TRANSA, ta);
    desc.set(CUBLASLT_MATMUL_DESC_TRANSB, tb);
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, p.epilogue);
    if (with_bias) {
      desc.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, cuda_type(p.dtype));
      if (p.batch > 1) desc.set(CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, p.stride_bias);
    }
  }
};

namespace {

// The cache key of a call: fields cuBLASLt ignores are normalised (batch strides of an
// unbatched problem, C's layout when D stands in for it, the bias stride without a bias)
// so that they never split one plan into several.
GemmPlanKey plan_key(const CudaBackend& be, const GemmProblem& p, const void* a, const void* b,
                     const void* c, const void* d, const void* bias) {
  const bool batched = p.batch > 1;
  GemmPlanKey key;
  key.device = be.device_index();
  key.dtype = p.dtype;
  key.transa = p.transa;
  key.transb = p.transb;
  key.m = p.m;
  key.n = p.n;
  key.k = p.k;
  key.has_c = c != nullptr;
  key.has_bias = bias != nullptr;
  key.lda = p.lda;
  key.ldb = p.ldb;
  key.ldd = p.ldd;
  key.ldc = key.has_c ? p.ldc : p.ldd;
  key.batch = p.batch;
  key.stride_a = batched ? p.stride_a : 0;
  key.stride_b = batched ? p.stride_b : 0;
  key.stride_d = batched ? p.stride_d : 0;
  key.stride_c = batched ? (key.has_c ? p.stride_c : p.stride_d) : 0;
  key.stride_bias = batched && key.has_bias ? p.stride_bias : 0;
  key.epilogue = static_cast<int>(p.epilogue);
  key.align_a = alignment_of(a);
  key.align_b = alignment_of(b);
  key.align_d = alignment_of(d);
  key.align_c = key.has_c ? alignment_of(c) : key.align_d;
  key.align_bias = key.has_bias ? alignment_of(bias) : 0;
  return key;
}

// Queues D = A B (+ C) with `algo` on be's stream; C is D when the plan has none.
cublasStatus_t launch(CudaBackend& be, const GemmPlan& plan, const cublasLtMatmulAlgo_t& algo,
                      const void* a, const void* b, const void* c, void* d) {
  const float alpha = 1.0f, beta = plan.has_c ? 1.0f : 0.0f;
  void* workspace = be.workspace(kWorkspaceBytes);
  return cublasLtMatmul(be.cublaslt(), plan.desc.desc, &alpha, a, plan.a.layout, b,
                        plan.b.layout, &beta, plan.has_c ? c : d, plan.c.layout, d,
                        plan.d.layout, &algo, workspace, kWorkspaceBytes, be.stream());
}

std::uint32_t algo_config(const cublasLtMatmulAlgo_t& algo,
                          cublasLtMatmulAlgoConfigAttributes_t attr) {
  std::uint32_t value = 0;  // every attribute read here is a 32-bit integer
  std::size_t written = 0;
  check(cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &value, sizeof(value), &written),
        "MatmulAlgoConfigGetAttribute");
  return value;
}

std::string algo_summary(const cublasLtMatmulAlgo_t& algo) {
  std::ostringstream os;
  os << "algo " << static_cast<std::int32_t>(algo_config(algo, CUBLASLT_ALGO_CONFIG_ID))
     << " tile " << algo_config(algo, CUBLASLT_ALGO_CONFIG_TILE_ID) << " stages "
     << algo_config(algo, CUBLASLT_ALGO_CONFIG_STAGES_ID) << " split-k "
     << static_cast<std::int32_t>(algo_config(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM))
     << " reduction " << algo_config(algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME) << " swizzle "
     << algo_config(algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING);
  return os.str();
}

// Median milliseconds of kGemmTimedRuns launches of each candidate (after one warm-up),
// nullopt for a candidate cuBLASLt refuses to launch. D is a scratch buffer with the real
// D's address modulo 256 (so the same alignment): the real output keeps its contents,
// which matters where it is also C (linear_residual may accumulate in place). A, B, C and
// the bias are only read. Waits for the stream once.
std::vector<std::optional<double>> time_candidates(
    CudaBackend& be, const GemmPlan& plan, const GemmPlanKey& key,
    const std::vector<cublasLtMatmulHeuristicResult_t>& candidates, const void* a, const void* b,
    const void* c, const void* d) {
  const std::int64_t elements = strided_extent(key.m, key.n, key.ldd, key.batch, key.stride_d);
  const auto bytes = elements * static_cast<std::int64_t>(dtype_size(key.dtype)) + 256;
  const Tensor scratch = be.empty({bytes}, DType::u8);
  auto* const base = static_cast<unsigned char*>(scratch.raw_data());
  const std::uintptr_t shift =
      (reinterpret_cast<std::uintptr_t>(d) - reinterpret_cast<std::uintptr_t>(base)) % 256;
  void* const scratch_d = base + shift;
  return time_candidates_interleaved(be, candidates.size(), kGemmTimedRuns, [&](std::size_t i) {
    return launch(be, plan, candidates[i].algo, a, b, c, scratch_d) == CUBLAS_STATUS_SUCCESS;
  });
}

void print_plan(const GemmPlanKey& key,
                const std::vector<cublasLtMatmulHeuristicResult_t>& candidates,
                const std::vector<std::optional<double>>& times_ms, std::size_t chosen) {
  const double flop = 2.0 * static_cast<double>(key.m) * static_cast<double>(key.n) *
                      static_cast<double>(key.k) * static_cast<double>(key.batch);
  std::ostringstream os;
  os << "ditserve gemm plan: " << key.describe() << "\n";
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    os << "  #" << i << " " << algo_summary(candidates[i].algo) << ": ";
    if (times_ms.empty()) {
      os << "not timed";
    } else if (!times_ms[i]) {
      os << "failed to launch";
    } else {
      os << *times_ms[i] << " ms, " << flop / (*times_ms[i] * 1e9) << " TFLOP/s";
    }
    os << (i == chosen ? "  <- chosen" : "") << "\n";
  }
  std::cerr << os.str();
}

// Up to `count` algorithms cuBLASLt's heuristic offers for the plan, best first. With
// `deterministic_reduction`, no in-place split-K: its partial sums are added up in the
// output type (one bf16 rounding per split) and serialised through workspace counters.
std::vector<cublasLtMatmulHeuristicResult_t> heuristic_candidates(CudaBackend& be,
                                                                  const GemmPlan& plan,
                                                                  const GemmPlanKey& key, int count,
                                                                  bool deterministic_reduction) {
  Preference pref(key);
  const auto in_place = static_cast<std::uint32_t>(CUBLASLT_REDUCTION_SCHEME_INPLACE);
  if (deterministic_reduction) {
    pref.set(CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
             static_cast<std::uint32_t>(CUBLASLT_REDUCTION_SCHEME_MASK) & ~in_place);
  }
  std::vector<cublasLtMatmulHeuristicResult_t> candidates(static_cast<std::size_t>(count));
  int found = 0;
  check(cublasLtMatmulAlgoGetHeuristic(be.cublaslt(), plan.desc.desc, plan.a.layout,
                                       plan.b.layout, plan.c.layout, plan.d.layout, pref.pref,
                                       count, candidates.data(), &found),
        "MatmulAlgoGetHeuristic");
  candidates.resize(static_cast<std::size_t>(std::clamp(found, 0, count)));
  std::erase_if(candidates, [&](const cublasLtMatmulHeuristicResult_t& h) {
    return h.state != CUBLAS_STATUS_SUCCESS ||
           (deterministic_reduction &&
            algo_config(h.algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME) == in_place);
  });
  return candidates;
}

// Plans the problem of `key`: its descriptors, then cuBLASLt's first heuristic pick or,
// with autotuning, the fastest of up to kGemmMaxCandidates candidates (in-place split-K
// excluded; DITSERVE_GEMM_AUTOTUNE=0 picks exactly as ditserve did before the cache).
std::shared_ptr<GemmPlan> make_plan(CudaBackend& be, const GemmPlanKey& key, const GemmProblem& p,
                                    const void* a, const void* b, const void* c, const void* d,
                                    const void* bias) {
  auto plan = std::make_shared<GemmPlan>(p, key.has_c, key.has_bias);
  if (key.has_bias) plan->desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  const GemmTuningOptions& options = be.gemm_plans().options();
  std::vector<cublasLtMatmulHeuristicResult_t> candidates =
      options.autotune ? heuristic_candidates(be, *plan, key, kGemmMaxCandidates, true)
                       : heuristic_candidates(be, *plan, key, 1, false);
  // Should only in-place split-K fit a problem, take what autotuning off would rather
  // than fail a GEMM that ran before.
  if (candidates.empty() && options.autotune) {
    candidates = heuristic_candidates(be, *plan, key, 1, false);
  }
  if (candidates.empty()) throw Error("cuBLASLt: no algorithm for GEMM " + key.describe());

  std::vector<std::optional<double>> times_ms;
  std::size_t chosen = 0;
  if (candidates.size() > 1) {
    times_ms = time_candidates(be, *plan, key, candidates, a, b, c, d);
    const std::optional<std::size_t> fastest = pick_fastest(times_ms, kGemmMinGain);
    if (!fastest) {
      throw Error("cuBLASLt: none of the " + std::to_string(candidates.size()) +
                  " algorithms offered for GEMM " + key.describe() + " launched");
    }
    chosen = *fastest;
  }
  plan->algo = candidates[chosen].algo;
  if (options.debug) print_plan(key, candidates, times_ms, chosen);
  return plan;
}

// Runs one GEMM through the backend's plan cache. Pointers may change from call to call;
// everything else a plan depends on is in its GemmPlanKey.
void run_gemm(CudaBackend& be, const GemmProblem& p, const void* a, const void* b, void* d,
              const void* bias, const void* c = nullptr) {
  const GemmPlanKey key = plan_key(be, p, a, b, c, d, bias);
  DeviceGuard guard(be.device_index());
  GemmPlanCache& plans = be.gemm_plans();
  GemmPlan* plan = plans.find(key);
  if (plan == nullptr) plan = &plans.put(key, make_plan(be, key, p, a, b, c, d, bias));
  if (bias != nullptr) plan->desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  check(launch(be, *plan, plan->algo, a, b, c, d), "Matmul");
}

}  // namespace

void linear(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& w,
            const Tensor& bias, Activation act) {
  const std::int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  GemmProblem p{};
  p.dtype = x.dtype();
  p.transa = true;   // A = w stored [N, K] row-major = column-major K x N, ld K
  p.transb = false;  // B = x stored [M, K] row-major = column-major K x M, ld = row stride
  p.m = n;
  p.n = m;
  p.k = k;
  p.lda = w.stride(0);
  p.ldb = x.stride(0);
  p.ldd = out.stride(0);
  const bool has_bias = bias.defined();
  // cuBLASLt's GELU epilogue is the tanh approximation; the others run as a second pass.
  const bool fuse_gelu = act == Activation::gelu_tanh;
  if (fuse_gelu) p.epilogue = has_bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  else if (has_bias) p.epilogue = CUBLASLT_EPILOGUE_BIAS;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    fill_zero(be, out);
    return;  // unreachable in practice: the dispatcher rejects K == 0
  }
  run_gemm(be, p, w.raw_data(), x.raw_data(), out.raw_data(), has_bias ? bias.raw_data() : nullptr);
  if (!fuse_gelu && act != Activation::none) activation(be, act, out, out);
}

void linear_residual(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& w,
                     const Tensor& bias, const Tensor& residual, const Tensor& gate) {
  const std::int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  if (m == 0 || n == 0) return;
  const std::int64_t samples = gate.defined() ? gate.size(0) : 1;
  const std::int64_t rows = m / samples;  // per sample
  // out_s = residual_s + (x_s w^T + bias) * gate_s = residual_s + x_s (diag(gate_s) w)^T +
  // gate_s * bias: the gate scales w's output rows, so sample s's GEMM reads its own copy.
  Tensor weight = w, b = bias;
  if (gate.defined()) {
    weight = be.empty({samples, n, k}, w.dtype());
    binary(be, BinaryOp::mul, weight, gate.view({samples, n, 1}).expand({samples, n, k}),
           w.unsqueeze(0).expand({samples, n, k}), 1.0f);
    if (bias.defined()) {
      b = be.empty({samples, n}, bias.dtype());
      binary(be, BinaryOp::mul, b, gate, bias.unsqueeze(0).expand({samples, n}), 1.0f);
    }
  }
  GemmProblem p{};
  p.dtype = x.dtype();
  p.transa = true;  // A = w (or sample s's scaled copy), column-major K x N, ld K
  p.transb = false;
  p.m = n;
  p.n = rows;
  p.k = k;
  p.lda = k;
  p.ldb = x.stride(0);
  p.ldd = out.stride(0);
  p.ldc = residual.stride(0);
  p.batch = samples;
  p.stride_a = gate.defined() ? n * k : 0;
  p.stride_b = rows * x.stride(0);
  p.stride_d = rows * out.stride(0);
  p.stride_c = rows * residual.stride(0);
  p.stride_bias = gate.defined() ? n : 0;
  if (b.defined()) p.epilogue = CUBLASLT_EPILOGUE_BIAS;
  run_gemm(be, p, weight.raw_data(), x.raw_data(), out.raw_data(),
           b.defined() ? b.raw_data() : nullptr, residual.raw_data());
}

void linear_stacked(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& w,
                    const Tensor& bias) {
  const std::int64_t groups = out.size(0), m = x.size(0), k = x.size(1), n = out.size(2);
  if (groups == 0 || m == 0 || n == 0) return;
  // linear()'s GEMM once per block of w's rows: A = block g of w (batch stride N K), B = x
  // shared by every block (batch stride 0), D = out[g] (batch stride M N), bias block g.
  GemmProblem p{};
  p.dtype = x.dtype();
  p.transa = true;
  p.transb = false;
  p.m = n;
  p.n = m;
  p.k = k;
  p.lda = k;
  p.ldb = x.stride(0);
  p.ldd = n;
  if (bias.defined()) p.epilogue = CUBLASLT_EPILOGUE_BIAS;
  // cuBLASLt learns the alignment of each operand's first matrix only (up to 256 bytes);
  // the later ones share it when every batch stride is a multiple of 256 bytes (STDiT3:
  // N = C = 1152 in bf16). Other sizes run one GEMM per block, each planned for its own
  // addresses.
  const auto bytes = static_cast<std::int64_t>(dtype_size(x.dtype()));
  const bool batched = (n * k * bytes) % 256 == 0 && (m * n * bytes) % 256 == 0 &&
                       (!bias.defined() || (n * bytes) % 256 == 0);
  if (batched) {
    p.batch = groups;
    p.stride_a = n * k;
    p.stride_b = 0;
    p.stride_d = m * n;
    p.stride_bias = n;
    run_gemm(be, p, w.raw_data(), x.raw_data(), out.raw_data(),
             bias.defined() ? bias.raw_data() : nullptr);
    return;
  }
  for (std::int64_t g = 0; g < groups; ++g) {
    run_gemm(be, p, w.narrow(0, g * n, n).raw_data(), x.raw_data(), out.select(0, g).raw_data(),
             bias.defined() ? bias.narrow(0, g * n, n).raw_data() : nullptr);
  }
}

void matmul(CudaBackend& be, const Tensor& out, const Tensor& a, const Tensor& b) {
  // out[bt] (M x N row-major) = a[bt] (M x K) @ b[bt] (K x N); column-major view:
  // out^T (N x M) = b^T (N x K) a^T (K x M). A := b, B := a.
  const std::int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  GemmProblem p{};
  p.dtype = a.dtype();
  p.m = n;
  p.n = m;
  p.k = k;
  // b row-major [K, N]: unit stride on N means column-major N x K (op N, ld = stride K).
  if (b.stride(2) == 1) {
    p.transa = false;
    p.lda = b.stride(1);
  } else {
    p.transa = true;  // unit stride on K: column-major K x N, ld = stride N
    p.lda = b.stride(2);
  }
  if (a.stride(2) == 1) {
    p.transb = false;  // column-major K x M
    p.ldb = a.stride(1);
  } else {
    p.transb = true;  // column-major M x K
    p.ldb = a.stride(2);
  }
  p.ldd = out.stride(1);
  p.batch = batch;
  p.stride_a = b.stride(0);
  p.stride_b = a.stride(0);
  p.stride_d = out.stride(0);
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {
    fill_zero(be, out);
    return;
  }
  run_gemm(be, p, b.raw_data(), a.raw_data(), out.raw_data(), nullptr);
}

}  // namespace ditserve::cuda
