// Captured work on the GPU (kernels/captured_work.h): a DiT-like step in bf16 (modulated
// layer norm, GEMMs with epilogues, cuDNN attention with key lengths, short temporal
// attention, gated residuals, a timestep embedding) captured as a CUDA graph must give
// bit for bit what the same ops give eagerly, for new input values copied into the
// captured inputs before each replay, without the pool growing across replays; and a
// capture whose work synchronises the host must fail naming the cause, leave the stream
// out of capture mode and the backend usable.

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include "harness.h"
#include "kernels/attention.h"
#include "kernels/captured_work.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "tensor/cuda/cuda_check.h"

namespace ditserve::gpu_check {
namespace {

Tensor random_on(Harness& h, const Shape& shape, float scale, DType dtype, std::mt19937_64& rng) {
  Tensor t = Tensor::empty_host(shape, DType::f32);
  std::uniform_real_distribution<float> dist(-scale, scale);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return transfer(h.host(), cast(h.host(), t, dtype), h.gpu());
}

double max_abs_diff(Harness& h, const Tensor& a, const Tensor& b) {
  const std::vector<float> x = transfer(h.gpu(), cast(h.gpu(), a, DType::f32), h.host()).to_vector_f32();
  const std::vector<float> y = transfer(h.gpu(), cast(h.gpu(), b, DType::f32), h.host()).to_vector_f32();
  double worst = x.size() == y.size() ? 0.0 : INFINITY;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(x[i]) - static_cast<double>(y[i])));
  return worst;
}

bool stream_capturing(Harness& h) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  DITSERVE_CUDA_CHECK(cudaStreamIsCapturing(h.cuda().stream(), &status));
  return status != cudaStreamCaptureStatusNone;
}

Result replay_matches_eager(Harness& h) {
  Result r{"captured_work", "bf16", "", NAN, 0.0, false, ""};
  try {
    Backend& gpu = h.gpu();
    std::mt19937_64 rng(20261124);
    constexpr std::int64_t kB = 2, kT = 4, kS = 64, kC = 256, kH = 4, kD = 64, kL = 12;
    const DType bf16 = DType::bf16;
    const float ws = 1.0f / 16.0f;
    const Tensor w_t = random_on(h, {kC, 256}, ws, bf16, rng);
    const Tensor w_qkv = random_on(h, {3 * kC, kC}, ws, bf16, rng);
    const Tensor b_qkv = random_on(h, {3 * kC}, 0.1f, bf16, rng);
    const Tensor w_o = random_on(h, {kC, kC}, ws, bf16, rng);
    const Tensor w_kv = random_on(h, {2 * kC, kC}, ws, bf16, rng);
    const Tensor w_1 = random_on(h, {4 * kC, kC}, ws, bf16, rng);
    const Tensor w_2 = random_on(h, {kC, 4 * kC}, ws / 2, bf16, rng);
    const Tensor captions = random_on(h, {kB, kL, kC}, 1.0f, bf16, rng);
    Tensor lengths_host = Tensor::empty_host({kB}, DType::i32);
    lengths_host.data<std::int32_t>()[0] = kL;
    lengths_host.data<std::int32_t>()[1] = 5;
    const Tensor lengths = transfer(h.host(), lengths_host, gpu);

    // The step: what a DiT block does to tokens x [B, T, S, C] given timesteps [B].
    const auto step = [&](const Tensor& x, const Tensor& timesteps) {
      const Tensor t = linear(gpu, cast(gpu, timestep_embedding(gpu, timesteps, 256, true), bf16), w_t,
                              {}, Activation::silu);                      // [B, C]
      const Tensor mod = t.view({kB, 1, kC});
      const Tensor tokens = x.view({kB, kT * kS, kC});
      const Tensor hm = modulate_layer_norm(gpu, tokens, mod, mod, 1e-6f);
      const Tensor qkv = linear(gpu, hm, w_qkv, b_qkv).view({kB * kT, kS, 3, kH, kD});
      const Tensor spatial = attention(gpu, qkv.select(2, 0), qkv.select(2, 1), qkv.select(2, 2));
      Tensor y = gated_residual(gpu, tokens, mod, linear(gpu, spatial.view({kB, kT * kS, kC}), w_o));
      // Temporal attention: T = 4 keys per position (the short-sequence kernels).
      const Tensor by_position = contiguous(gpu, y.view({kB, kT, kS, kC}).permute({0, 2, 1, 3}));
      const Tensor tq = by_position.view({kB * kS, kT, kH, kD});
      const Tensor temporal = attention(gpu, tq, tq, tq);
      y = add(gpu, y, contiguous(gpu, temporal.view({kB, kS, kT, kC}).permute({0, 2, 1, 3})).view({kB, kT * kS, kC}));
      // Cross-attention to captions with per-sample lengths (cuDNN with sequence lengths).
      const Tensor kv = linear(gpu, captions, w_kv).view({kB, kL, 2, kH, kD});
      AttentionParams cross;
      cross.key_lengths = lengths;
      const Tensor c = attention(gpu, y.view({kB, kT * kS, kH, kD}), kv.select(2, 0), kv.select(2, 1), cross);
      y = add(gpu, y, c.view({kB, kT * kS, kC}));
      const Tensor m = linear(gpu, layer_norm(gpu, y, {}, {}, 1e-6f), w_1, {}, Activation::gelu_tanh);
      return gated_residual(gpu, y, mod, linear(gpu, m, w_2)).view({kB, kT, kS, kC});
    };

    const Tensor x_static = random_on(h, {kB, kT, kS, kC}, 1.0f, bf16, rng);
    const Tensor t_static = random_on(h, {kB}, 500.0f, DType::f32, rng);
    const Tensor out_static = gpu.empty({kB, kT, kS, kC}, bf16);
    (void)step(x_static, t_static);  // eager first: plans, autotuning, workspace
    const std::unique_ptr<CapturedWork> work =
        capture_work(gpu, [&] { copy_into(gpu, out_static, step(x_static, t_static)); });
    gpu.synchronize();
    const cuda::PoolStats before = h.cuda().pool_stats();
    double worst = 0;
    constexpr int kReplays = 4;
    for (int i = 0; i < kReplays; ++i) {
      copy_into(gpu, x_static, random_on(h, {kB, kT, kS, kC}, 1.0f, bf16, rng));
      copy_into(gpu, t_static, random_on(h, {kB}, 500.0f, DType::f32, rng));
      work->replay();
      const Tensor eager = step(x_static, t_static);
      worst = std::max(worst, max_abs_diff(h, out_static, eager));
    }
    gpu.synchronize();
    const cuda::PoolStats after = h.cuda().pool_stats();
    std::ostringstream desc;
    desc << "DiT-like block B" << kB << " T" << kT << " S" << kS << " C" << kC << ": " << kReplays
         << " replays on new inputs vs eager (max |diff| " << worst << "); pool used "
         << before.used_bytes << " -> " << after.used_bytes << " B";
    r.shape = desc.str();
    r.rel_error = worst;
    r.pass = worst == 0.0 && !stream_capturing(h);
    if (worst != 0.0) r.error = "a replay differs from the eager step on the same inputs";
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

Result failed_capture_is_clean(Harness& h) {
  Result r{"captured_work", "f32", "work that synchronises the host inside the capture", NAN, 0.0,
           false, ""};
  try {
    Backend& gpu = h.gpu();
    std::mt19937_64 rng(7);
    const Tensor a = random_on(h, {64, 64}, 1.0f, DType::f32, rng);
    const Tensor eager = linear(gpu, a, a);
    std::string message;
    try {
      (void)capture_work(gpu, [&] {
        (void)linear(gpu, a, a);
        gpu.synchronize();  // not capturable
      });
    } catch (const Error& e) {
      message = e.what();
    }
    const bool named = message.find("CUDA graph capture on cuda:") != std::string::npos;
    const bool out_of_capture = !stream_capturing(h) && !is_capturing(gpu);
    // The backend still works eagerly, and a later capture succeeds.
    const double eager_again = max_abs_diff(h, linear(gpu, a, a), eager);
    const Tensor out = gpu.empty({64, 64}, DType::f32);
    const auto work = capture_work(gpu, [&] { copy_into(gpu, out, linear(gpu, a, a)); });
    work->replay();
    const double replayed = max_abs_diff(h, out, eager);
    r.rel_error = std::max(eager_again, replayed);
    r.pass = named && out_of_capture && r.rel_error == 0.0;
    if (r.pass) {
      r.shape += ": " + message;
    } else {
      r.error = "message: " + (message.empty() ? std::string("(none: the capture did not fail)") : message);
      if (!out_of_capture) r.error += "; the stream was left capturing";
      if (r.rel_error != 0.0) r.error += "; the backend's results changed after the failed capture";
    }
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

}  // namespace

std::vector<Result> check_captured_work(Harness& h) {
  return {replay_matches_eager(h), failed_capture_is_clean(h)};
}

}  // namespace ditserve::gpu_check
