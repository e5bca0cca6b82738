// GPU microbenchmark of the two ops that dominate a DiT step: GEMM (cuBLASLt) and
// attention (cuDNN flash attention), timed with CUDA events (median of repeated runs,
// rotating input sets so the L2 cache does not flatter the numbers). Prints a table and
// writes JSON with --json PATH. Reports numbers only; correctness is tools/gpu_check's job.

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/attention.h"
#include "kernels/copy.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/gemm.h"
#include "tensor/cuda/stream.h"

namespace ditserve {
namespace {

// Random bf16 tensor on the GPU (uniform [-1, 1) drawn on the host, then copied).
Tensor random_device(Backend& host, Backend& gpu, const Shape& shape, unsigned seed) {
  Tensor t = Tensor::empty_host(shape, DType::f32);
  std::uint32_t state = seed * 2654435761u + 1;
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    state = state * 1664525u + 1013904223u;
    p[i] = static_cast<float>(state >> 8) / 8388608.0f - 1.0f;
  }
  return transfer(host, cast(host, t, DType::bf16), gpu);
}

// Median milliseconds of `reps` runs of fn(i) (i cycles over the input sets).
double time_ms(cuda::CudaBackend& be, int warmup, int reps, const std::function<void(int)>& fn) {
  for (int i = 0; i < warmup; ++i) fn(i);
  be.synchronize();
  std::vector<double> times;
  cuda::Event start(be.device_index(), true), stop(be.device_index(), true);
  for (int i = 0; i < reps; ++i) {
    start.record(be.stream());
    fn(i);
    stop.record(be.stream());
    stop.synchronize();
    times.push_back(stop.elapsed_ms_since(start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct GemmCase { std::string name; std::int64_t m, n, k; Activation act; bool bias; };
struct AttnCase { std::string name; std::int64_t b, h, sq, sk, d; };

}  // namespace
}  // namespace ditserve

int main(int argc, char** argv) {
  using namespace ditserve;
  std::string json_path;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--json") json_path = argv[i + 1];
  }
  auto host = make_backend(Device::cpu());
  auto gpu_owner = make_backend(Device::cuda(0));
  auto& gpu = cuda::as_cuda(*gpu_owner);
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  nlohmann::json report;
  report["gpu"] = prop.name;
  constexpr int kSets = 3;

  const std::vector<GemmCase> gemms = {
      {"peak 8192x8192x8192", 8192, 8192, 8192, Activation::none, false},
      {"mlp.fc1 16384x4608x1152", 16384, 4608, 1152, Activation::none, false},
      {"mlp.fc1 +bias+gelu 16384x4608x1152", 16384, 4608, 1152, Activation::gelu_tanh, true},
      {"mlp.fc2 16384x1152x4608", 16384, 1152, 4608, Activation::none, false},
      {"attn.qkv 16384x3456x1152", 16384, 3456, 1152, Activation::none, true},
  };
  std::printf("%-40s %10s %10s\n", "GEMM (M x N x K, bf16)", "ms", "TFLOP/s");
  for (const auto& c : gemms) {
    std::vector<Tensor> xs, ws;
    for (int s = 0; s < kSets; ++s) {
      xs.push_back(random_device(*host, gpu, {c.m, c.k}, 11 + s));
      ws.push_back(random_device(*host, gpu, {c.n, c.k}, 21 + s));
    }
    const Tensor bias = c.bias ? random_device(*host, gpu, {c.n}, 31) : Tensor();
    const double ms = time_ms(gpu, 5, 30, [&](int i) {
      linear(gpu, xs[i % kSets], ws[i % kSets], bias, c.act);
    });
    const double tflops = 2.0 * c.m * c.n * c.k / (ms * 1e-3) / 1e12;
    std::printf("%-40s %10.4f %10.1f\n", c.name.c_str(), ms, tflops);
    report["gemm"].push_back({{"name", c.name}, {"m", c.m}, {"n", c.n}, {"k", c.k}, {"ms", ms},
                              {"tflops", tflops}});
  }

  const std::vector<AttnCase> attns = {
      {"spatial 720p block (30x16x3600x3600, d72)", 30, 16, 3600, 3600, 72},
      {"spatial 144p block (30x16x144x144, d72)", 30, 16, 144, 144, 72},
      {"cross 720p (2x16x54000x300, d72)", 2, 16, 54000, 300, 72},
      {"temporal 720p (7200x16x15x15, d72)", 7200, 16, 15, 15, 72},
  };
  std::printf("%-44s %10s %10s\n", "attention (B x H x Sq x Sk, bf16)", "ms", "TFLOP/s");
  for (const auto& c : attns) {
    std::vector<Tensor> qs, ks, vs;
    for (int s = 0; s < kSets; ++s) {
      qs.push_back(random_device(*host, gpu, {c.b, c.sq, c.h, c.d}, 41 + s));
      ks.push_back(random_device(*host, gpu, {c.b, c.sk, c.h, c.d}, 51 + s));
      vs.push_back(random_device(*host, gpu, {c.b, c.sk, c.h, c.d}, 61 + s));
    }
    const double ms = time_ms(gpu, 3, 20, [&](int i) {
      attention(gpu, qs[i % kSets], ks[i % kSets], vs[i % kSets]);
    });
    const double tflops = 4.0 * c.b * c.h * c.sq * c.sk * c.d / (ms * 1e-3) / 1e12;
    std::printf("%-44s %10.4f %10.1f\n", c.name.c_str(), ms, tflops);
    report["attention"].push_back({{"name", c.name}, {"b", c.b}, {"h", c.h}, {"sq", c.sq},
                                   {"sk", c.sk}, {"d", c.d}, {"ms", ms}, {"tflops", tflops}});
  }
  if (!json_path.empty()) std::ofstream(json_path) << report.dump(2) << "\n";
  return 0;
}
