// The CUDA backend's GEMM plan cache (kernels/cuda/gemm_plan_cache.h): a problem planned
// (and autotuned) at first use, then reused with other data and pointers; autotuning on a
// first use whose output is also its C operand; batched problems; autotuning off. Each
// case is checked against the CPU like any other, and on CUDA also asserts what the cache
// did (a failed assertion throws, which the harness reports as a failure).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "harness.h"
#include "kernels/copy.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/library_ops.h"
#include "kernels/gemm.h"
#include "kernels/gemm_plan.h"
#include "tensor/error.h"

namespace ditserve::gpu_check {
namespace {

cuda::CudaBackend* cuda_of(Backend& be) { return dynamic_cast<cuda::CudaBackend*>(&be); }

std::uint32_t align(const Tensor& t) {
  return pointer_alignment(reinterpret_cast<std::uintptr_t>(t.raw_data()));
}

// Plans made between two reads of the cache size must be `expected`.
void expect_new_plans(const char* what, std::size_t before, std::size_t after,
                      std::size_t expected) {
  DITSERVE_CHECK(after - before == expected, "gemm plan cache: ", what, " made ", after - before,
                 " plans; expected ", expected);
}

// y = linear(x, w, b) twice on different tensors of one problem: the first call plans
// it, the second must reuse that plan (with its own bias pointer set) and still be right.
Case linear_twice() {
  return {"gemm_plan",
          "linear x[2,1080,1152] w[1152,1152] bias gelu, twice: new data, pointers",
          {floating({2, 1080, 1152}), floating({1152, 1152}, 1.0f / std::sqrt(1152.0f)),
           floating({1152}, 0.5f), floating({2, 1080, 1152}),
           floating({1152, 1152}, 1.0f / std::sqrt(1152.0f)), floating({1152}, 0.5f, 1.0f)},
          [](Backend& be, const std::vector<Tensor>& in) {
            cuda::CudaBackend* gpu = cuda_of(be);
            const std::size_t before = gpu ? gpu->gemm_plans().size() : 0;
            const Tensor first = linear(be, in[0], in[1], in[2], Activation::gelu_tanh);
            const std::size_t between = gpu ? gpu->gemm_plans().size() : 0;
            const Tensor second = linear(be, in[3], in[4], in[5], Activation::gelu_tanh);
            if (gpu) {
              expect_new_plans("the first call", before, between, 1);
              // Same alignments (the pool's allocations are 256-aligned): the same key.
              const bool same_key = align(in[0]) == align(in[3]) && align(in[1]) == align(in[4]) &&
                                    align(in[2]) == align(in[5]) && align(first) == align(second);
              expect_new_plans("the second call", between, gpu->gemm_plans().size(),
                               same_key ? 0 : 1);
            }
            return concat(be, {first, second}, 0);
          }};
}

// The same GEMM on the same data twice must give the same bits (a deterministic plan).
Case linear_same_bits() {
  return {"gemm_plan", "linear x[4320,1152] w[3456,1152] bias, twice: same bits",
          {floating({4320, 1152}), floating({3456, 1152}, 1.0f / std::sqrt(1152.0f)),
           floating({3456}, 0.5f)},
          [](Backend& be, const std::vector<Tensor>& in) {
            const Tensor first = linear(be, in[0], in[1], in[2]);
            const Tensor second = linear(be, in[0], in[1], in[2]);
            if (cuda_of(be) != nullptr) {
              const auto host = make_backend(Device::cpu());
              const Tensor a = transfer(be, first, *host), b = transfer(be, second, *host);
              DITSERVE_CHECK(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0,
                             "gemm plan: two runs of one GEMM on the same data differ");
            }
            return first;
          }};
}

// linear_residual writing onto its residual (out == C) at the problem's first use: the
// autotuning runs must leave the residual alone, or it is added more than once.
Case residual_in_place_first_use(bool gated) {
  const float ws = 1.0f / std::sqrt(1152.0f);
  std::vector<Input> inputs = {floating({2, 250, 1152}), floating({1152, 1152}, ws),
                               floating({1152}, 0.5f), floating({2, 250, 1152})};
  if (gated) inputs.push_back(floating({2, 1152}, 1.0f, 0.5f));
  return {"gemm_plan",
          std::string("linear_residual x[2,250,1152] w[1152,1152] bias") +
              (gated ? " gate" : "") + ", out == C, first use",
          inputs,
          [gated](Backend& be, const std::vector<Tensor>& in) {
            const Tensor gate = gated ? in[4] : Tensor();
            cuda::CudaBackend* gpu = cuda_of(be);
            if (gpu == nullptr) return linear_residual(be, in[0], in[1], in[2], in[3], gate);
            // A private copy of the residual (inputs are shared by the dtypes' runs) that
            // the GEMM then overwrites with its result.
            const Tensor accumulator = be.empty(in[3].shape(), in[3].dtype());
            copy_into(be, accumulator, in[3]);
            const Tensor rows = accumulator.view({500, 1152});
            const std::size_t before = gpu->gemm_plans().size();
            cuda::linear_residual(*gpu, rows, in[0].view({500, 1152}), in[1], in[2], rows, gate);
            expect_new_plans("the in-place first use", before, gpu->gemm_plans().size(), 1);
            return accumulator;
          }};
}

// Batched matmul (per-sample and shared right operands), each problem twice.
Case matmul_twice(bool shared_b) {
  return {"gemm_plan",
          shared_b ? "matmul a[3,200,64] @ shared b[64,136], twice"
                   : "matmul a[3,200,64] @ b[3,64,136], twice",
          {floating({3, 200, 64}), floating(shared_b ? Shape{64, 136} : Shape{3, 64, 136}),
           floating({3, 200, 64}), floating(shared_b ? Shape{64, 136} : Shape{3, 64, 136})},
          [](Backend& be, const std::vector<Tensor>& in) {
            cuda::CudaBackend* gpu = cuda_of(be);
            const std::size_t before = gpu ? gpu->gemm_plans().size() : 0;
            const Tensor first = matmul(be, in[0], in[1]);
            const std::size_t between = gpu ? gpu->gemm_plans().size() : 0;
            const Tensor second = matmul(be, in[2], in[3]);
            if (gpu) {
              expect_new_plans("the first call", before, between, 1);
              const bool same_key = align(in[0]) == align(in[2]) &&
                                    align(in[1]) == align(in[3]) && align(first) == align(second);
              expect_new_plans("the second call", between, gpu->gemm_plans().size(),
                               same_key ? 0 : 1);
            }
            return concat(be, {first, second}, 0);
          }};
}

// The same linear on the harness's (autotuning) backend and on a second backend of the
// same GPU built with autotuning off (cuBLASLt's first heuristic pick): both must be right.
Case autotune_on_and_off() {
  return {"gemm_plan", "linear x[4320,1152] w[1152,1152] bias, autotune on and off",
          {floating({4320, 1152}), floating({1152, 1152}, 1.0f / std::sqrt(1152.0f)),
           floating({1152}, 0.5f)},
          [](Backend& be, const std::vector<Tensor>& in) {
            const Tensor tuned = linear(be, in[0], in[1], in[2]);
            cuda::CudaBackend* gpu = cuda_of(be);
            if (gpu == nullptr) return concat(be, {tuned, linear(be, in[0], in[1], in[2])}, 0);
            DITSERVE_CHECK(gpu->gemm_plans().options().autotune,
                           "gpu_check expects the default backend to autotune; unset "
                           "DITSERVE_GEMM_AUTOTUNE");
            GemmTuningOptions off_options = gpu->gemm_plans().options();
            off_options.autotune = false;
            be.synchronize();  // the inputs were written on be's stream
            cuda::CudaBackend off(gpu->device_index(), off_options);
            const Tensor untuned_gpu = linear(off, in[0], in[1], in[2]);
            expect_new_plans("the untuned backend", 0, off.gemm_plans().size(), 1);
            const auto host = make_backend(Device::cpu());
            const Tensor untuned = transfer(*host, transfer(off, untuned_gpu, *host), be);
            return concat(be, {tuned, untuned}, 0);
          }};
}

}  // namespace

void add_gemm_plan_cases(std::vector<Case>& cases) {
  cases.push_back(linear_twice());
  cases.push_back(linear_same_bits());
  cases.push_back(residual_in_place_first_use(false));
  cases.push_back(residual_in_place_first_use(true));
  cases.push_back(matmul_twice(false));
  cases.push_back(matmul_twice(true));
  cases.push_back(autotune_on_and_off());
}

}  // namespace ditserve::gpu_check
