// cuBLASLt GEMMs for linear() and matmul(). Row-major ditserve tensors are handed to
// column-major cuBLASLt as their transposes: out[M,N] = x[M,K] w[N,K]^T becomes
// out^T[N,M] = w x^T, so cuBLASLt's A is w (transposed), B is x, and the bias is per
// row of the column-major result, which is what CUBLASLT_EPILOGUE_BIAS applies.
// linear_residual adds C (the residual, beta = 1) in the same epilogue: D = A B + C + bias.

#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/library_ops.h"
#include "tensor/cuda/cuda_check.h"

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

// RAII holders for the cuBLASLt descriptors of one call.
struct MatmulDesc {
  cublasLtMatmulDesc_t desc = nullptr;
  MatmulDesc() { check(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "MatmulDescCreate"); }
  ~MatmulDesc() { cublasLtMatmulDescDestroy(desc); }
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

// Largest power of two (<= 256) dividing the address: views may start anywhere, and the
// heuristic otherwise assumes 256-byte aligned operands.
std::uint32_t alignment_of(const void* ptr) {
  const auto address = reinterpret_cast<std::uintptr_t>(ptr);
  std::uint32_t align = 256;
  while (align > 1 && address % align != 0) align /= 2;
  return align;
}

struct Preference {
  cublasLtMatmulPreference_t pref = nullptr;
  Preference(const void* a, const void* b, const void* c, const void* d) {
    check(cublasLtMatmulPreferenceCreate(&pref), "MatmulPreferenceCreate");
    set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kWorkspaceBytes);
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_of(a));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_of(b));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_of(c));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_of(d));
  }
  ~Preference() { cublasLtMatmulPreferenceDestroy(pref); }
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

void run_gemm(CudaBackend& be, const GemmProblem& p, const void* a, const void* b, void* d,
              const void* bias, const void* c = nullptr) {
  const cudaDataType_t type = cuda_type(p.dtype);
  MatmulDesc desc;
  const cublasOperation_t ta = p.transa ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = p.transb ? CUBLAS_OP_T : CUBLAS_OP_N;
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, ta);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, tb);
  desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, p.epilogue);
  if (bias != nullptr) {
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, type);
    if (p.batch > 1) desc.set(CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, p.stride_bias);
  }
  const Layout la(type, p.transa ? p.k : p.m, p.transa ? p.m : p.k, p.lda, p.batch, p.stride_a);
  const Layout lb(type, p.transb ? p.n : p.k, p.transb ? p.k : p.n, p.ldb, p.batch, p.stride_b);
  const Layout ld(type, p.m, p.n, p.ldd, p.batch, p.stride_d);
  const Layout lc(type, p.m, p.n, c != nullptr ? p.ldc : p.ldd, p.batch,
                  c != nullptr ? p.stride_c : p.stride_d);
  Preference pref(a, b, c != nullptr ? c : d, d);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  check(cublasLtMatmulAlgoGetHeuristic(be.cublaslt(), desc.desc, la.layout, lb.layout, lc.layout,
                                       ld.layout, pref.pref, 1, &heuristic, &found),
        "MatmulAlgoGetHeuristic");
  if (found == 0) {
    throw Error("cuBLASLt: no algorithm for GEMM m=" + std::to_string(p.m) + " n=" +
                std::to_string(p.n) + " k=" + std::to_string(p.k) + " dtype " +
                std::string(dtype_name(p.dtype)));
  }
  const float alpha = 1.0f, beta = c != nullptr ? 1.0f : 0.0f;
  void* workspace = be.workspace(kWorkspaceBytes);
  DeviceGuard guard(be.device_index());
  check(cublasLtMatmul(be.cublaslt(), desc.desc, &alpha, a, la.layout, b, lb.layout, &beta,
                       c != nullptr ? c : d, lc.layout, d, ld.layout, &heuristic.algo, workspace,
                       kWorkspaceBytes, be.stream()),
        "Matmul");
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
