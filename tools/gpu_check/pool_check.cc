// Steady-state memory: a workload repeated with identical shapes must be served from the
// caching allocator's pool without it reserving more (and without leaking tensors).

#include <random>
#include <sstream>

#include "harness.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"

namespace ditserve::gpu_check {
namespace {

constexpr int kWarmup = 3;
constexpr int kIterations = 10;

Tensor random_gpu(Harness& h, const Shape& shape, float scale, DType dtype, std::mt19937_64& rng) {
  Tensor t = Tensor::empty_host(shape, DType::f32);
  std::uniform_real_distribution<float> dist(-scale, scale);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return transfer(h.host(), cast(h.host(), t, dtype), h.gpu());
}

double mib(std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace

Result check_pool_steady(Harness& h) {
  Result r{"pool_stats", "bf16", "", NAN, 0.0, false, ""};
  try {
    Backend& gpu = h.gpu();
    std::mt19937_64 rng(20261123);
    constexpr std::int64_t kB = 2, kS = 256, kC = 1152, kH = 16, kD = 72;
    const DType bf16 = DType::bf16;
    const float ws = 1.0f / 34.0f;  // ~1/sqrt(C)
    const Tensor x = random_gpu(h, {kB, kS, kC}, 1.0f, bf16, rng);
    const Tensor shift = random_gpu(h, {kB, 1, kC}, 0.5f, bf16, rng);
    const Tensor scale = random_gpu(h, {kB, 1, kC}, 0.5f, bf16, rng);
    const Tensor gate = random_gpu(h, {kB, 1, kC}, 0.5f, bf16, rng);
    const Tensor w_qkv = random_gpu(h, {3 * kC, kC}, ws, bf16, rng);
    const Tensor b_qkv = random_gpu(h, {3 * kC}, 0.1f, bf16, rng);
    const Tensor w_o = random_gpu(h, {kC, kC}, ws, bf16, rng);
    const Tensor w_1 = random_gpu(h, {4 * kC, kC}, ws, bf16, rng);
    const Tensor w_2 = random_gpu(h, {kC, 4 * kC}, ws / 2, bf16, rng);
    // A small VAE-like tail in f32: conv, group norm, SiLU, softmax.
    const Tensor v = random_gpu(h, {1, 16, 16, 64}, 1.0f, DType::f32, rng);
    const Tensor w_conv = random_gpu(h, {64, 3, 3, 64}, 0.05f, DType::f32, rng);
    const Tensor gn_w = random_gpu(h, {64}, 1.0f, DType::f32, rng);
    const Tensor gn_b = random_gpu(h, {64}, 1.0f, DType::f32, rng);

    auto step = [&] {
      const Tensor hm = modulate_layer_norm(gpu, x, shift, scale, 1e-6f);
      const Tensor qkv = linear(gpu, hm, w_qkv, b_qkv).view({kB, kS, 3, kH, kD});
      const Tensor a = attention(gpu, qkv.select(2, 0), qkv.select(2, 1), qkv.select(2, 2));
      const Tensor y = gated_residual(gpu, x, gate, linear(gpu, a.view({kB, kS, kC}), w_o));
      const Tensor m = linear(gpu, layer_norm(gpu, y, {}, {}, 1e-6f), w_1, {}, Activation::gelu_tanh);
      const Tensor out = gated_residual(gpu, y, gate, linear(gpu, m, w_2));
      const Tensor c = silu(gpu, group_norm(gpu, conv2d(gpu, v, w_conv, {}, {1, 1}, {1, 1}), 32,
                                            gn_w, gn_b, 1e-6f));
      const Tensor s = softmax(gpu, cast(gpu, out, DType::f32));
      (void)c;
      (void)s;
    };
    for (int i = 0; i < kWarmup; ++i) step();
    gpu.synchronize();
    const cuda::PoolStats before = h.cuda().pool_stats();
    for (int i = 0; i < kIterations; ++i) step();
    gpu.synchronize();
    const cuda::PoolStats after = h.cuda().pool_stats();

    std::ostringstream desc;
    desc << "DiT block bf16 B" << kB << " S" << kS << " C" << kC << " + f32 conv/group_norm, "
         << kIterations << " iterations after " << kWarmup << " warm-up; reserved "
         << mib(before.reserved_bytes) << " -> " << mib(after.reserved_bytes) << " MiB, used "
         << mib(before.used_bytes) << " -> " << mib(after.used_bytes) << " MiB";
    r.shape = desc.str();
    const double base = std::max<double>(1.0, static_cast<double>(before.reserved_bytes));
    r.rel_error = (static_cast<double>(after.reserved_bytes) -
                   static_cast<double>(before.reserved_bytes)) / base;
    r.pass = after.reserved_bytes == before.reserved_bytes && after.used_bytes == before.used_bytes;
    if (!r.pass) r.error = "the pool grew or kept memory across identical iterations";
  } catch (const std::exception& e) {
    r.error = e.what();
    r.pass = false;
  }
  return r;
}

}  // namespace ditserve::gpu_check
