// GPU microbenchmark of the two ops that dominate a DiT step: GEMM (cuBLASLt) and
// attention (cuDNN flash attention), of the memory-bound fused q/k RMSNorm + RoPE
// (reported in GB/s of q and k read and written) and of the temporal blocks'
// short-sequence attention (GB/s of q, k, v read and the output written), timed with CUDA
// events (median of repeated runs, rotating input sets so the L2 cache does not flatter
// the numbers). Prints a table and writes JSON with --json PATH. Reports numbers only;
// correctness is tools/gpu_check's job.

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
#include "kernels/qk_norm.h"
#include "kernels/rope.h"
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
// qkv [n, len, 3, heads, d]; 1D RoPE over len when rope.
struct QkNormCase { std::string name; std::int64_t n, len, heads, d; bool rope; };

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
  // STDiT3-XL/2 at 720p x 51 frames (batch 2 with guidance, 54 000 tokens per sample):
  // the temporal blocks see [2 * 3600 positions, 15 frames], the spatial ones [2 * 15
  // frames, 3600 positions]. Both have the same element count, so they share inputs;
  // the op works in place, and repeated runs keep the values bounded (a norm, a rotation).
  const std::vector<QkNormCase> qk_norms = {
      {"temporal 720p qkv[7200,15,3,16,72] +RoPE", 7200, 15, 16, 72, true},
      {"spatial 720p qkv[30,3600,3,16,72]", 30, 3600, 16, 72, false},
  };
  std::printf("%-44s %10s %10s\n", "qk_norm_rope (in place, bf16)", "ms", "GB/s");
  std::vector<Tensor> qkvs;
  const std::int64_t qkv_numel = 7200 * 15 * 3 * 16 * 72;
  for (int s = 0; s < kSets; ++s) qkvs.push_back(random_device(*host, gpu, {qkv_numel}, 71 + s));
  for (const auto& c : qk_norms) {
    const Tensor qw = random_device(*host, gpu, {c.d}, 81);
    const Tensor kw = random_device(*host, gpu, {c.d}, 82);
    const Tensor angles = c.rope ? transfer(*host, rope_angles_1d(c.len, c.d, 10000.0), gpu)
                                 : Tensor();
    const double ms = time_ms(gpu, 3, 20, [&](int i) {
      qk_norm_rope(gpu, qkvs[i % kSets].view({c.n, c.len, 3, c.heads, c.d}), qw, kw, 1e-6f,
                   angles);
    });
    // q and k read once and written once (2 bytes each); v is not touched.
    const double bytes = 2.0 * c.n * c.len * 2 * c.heads * c.d * 2;
    const double gbps = bytes / (ms * 1e-3) / 1e9;
    std::printf("%-44s %10.4f %10.1f\n", c.name.c_str(), ms, gbps);
    report["qk_norm_rope"].push_back({{"name", c.name}, {"n", c.n}, {"len", c.len},
                                      {"heads", c.heads}, {"d", c.d}, {"rope", c.rope},
                                      {"ms", ms}, {"gb_per_s", gbps}});
  }
  // STDiT3's temporal self-attention (attention_short unless DITSERVE_SHORT_KERNELS=0
  // selects cuDNN), q, k, v as the temporal blocks pass them: views of the fused
  // projection qkv [2 * positions, 15 frames, 3, 16, 72] (a batch index per position), or
  // blocks of a stacked [3, 2, 15, positions * 16, 72] (a head index per (position,
  // head)); 3600 positions at 720p, 144 at 144p, batch 2 with guidance. They share the
  // qk_norm_rope inputs above (bounded values). Memory-bound: GB/s of q, k, v read and
  // the output written.
  struct TemporalCase { std::string name; std::int64_t b, s, h, d; bool stacked; };
  const std::vector<TemporalCase> temporals = {
      {"temporal 720p qkv[7200,15,3,16,72] views", 7200, 15, 16, 72, false},
      {"temporal 720p stacked [3,2,15,57600,72]", 2, 15, 57600, 72, true},
      {"temporal 144p qkv[288,15,3,16,72] views", 288, 15, 16, 72, false},
      {"temporal 144p stacked [3,2,15,2304,72]", 2, 15, 2304, 72, true},
  };
  std::printf("%-44s %10s %10s\n", "attention, short sequences (bf16)", "ms", "GB/s");
  for (const auto& c : temporals) {
    const std::int64_t numel = 3 * c.b * c.s * c.h * c.d;
    const double ms = time_ms(gpu, 3, 20, [&](int i) {
      const Tensor flat = qkvs[i % kSets].narrow(0, 0, numel);
      if (c.stacked) {
        const Tensor qkv = flat.view({3, c.b, c.s, c.h, c.d});
        attention(gpu, qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2));
      } else {
        const Tensor qkv = flat.view({c.b, c.s, 3, c.h, c.d});
        attention(gpu, qkv.select(2, 0), qkv.select(2, 1), qkv.select(2, 2));
      }
    });
    const double bytes = 4.0 * c.b * c.s * c.h * c.d * 2;
    const double gbps = bytes / (ms * 1e-3) / 1e9;
    std::printf("%-44s %10.4f %10.1f\n", c.name.c_str(), ms, gbps);
    report["attention_short"].push_back({{"name", c.name}, {"b", c.b}, {"s", c.s}, {"h", c.h},
                                         {"d", c.d}, {"stacked", c.stacked}, {"ms", ms},
                                         {"gb_per_s", gbps}});
  }
  if (!json_path.empty()) std::ofstream(json_path) << report.dump(2) << "\n";
  return 0;
}
