#include "kernels/attention.h"

#include <cmath>

#include "kernels/activation.h"
#include "kernels/copy.h"
#include "kernels/cpu/attention.h"
#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace ditserve {
namespace {

// q, k or v as both backends read it without a copy: unit stride on D and a sequence
// stride that covers D; otherwise a contiguous copy.
Tensor with_unit_head_dim(Backend& be, const Tensor& t) {
  const bool direct =
      (t.size(3) == 1 || t.stride(3) == 1) && (t.size(1) <= 1 || t.stride(1) >= t.size(3));
  return direct ? t : contiguous(be, t);
}

// Heads wider than the fused and direct CUDA kernels take (the SD VAE's single 512-wide
// head): exact attention composed of f32 matrix products and a row softmax, a block of
// queries at a time so the score matrix stays within ~512 MiB.
void attention_by_products(Backend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                           const Tensor& v, float scale, const Tensor& bias) {
  const std::int64_t batch = q.size(0), sq = q.size(1), heads = q.size(2), sk = k.size(1);
  const std::int64_t block = std::max<std::int64_t>(1, (std::int64_t{128} << 20) / sk);
  const Tensor scale_t = transfer(*make_backend(Device::cpu()),
                                  Tensor::from_vector({scale}, {1}), be);
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t h = 0; h < heads; ++h) {
      const Tensor keys_t = cast(be, k.select(0, b).select(1, h), DType::f32).transpose(0, 1);
      const Tensor values = cast(be, v.select(0, b).select(1, h), DType::f32);
      for (std::int64_t start = 0; start < sq; start += block) {
        const std::int64_t n = std::min(block, sq - start);
        const Tensor queries =
            mul(be, cast(be, q.select(0, b).narrow(0, start, n).select(1, h), DType::f32), scale_t);
        Tensor scores = matmul(be, queries.unsqueeze(0), keys_t.unsqueeze(0));  // [1, n, Sk]
        if (bias.defined()) {
          scores = add(be, scores,
                       cast(be, bias.select(0, b).select(0, h).narrow(0, start, n), DType::f32));
        }
        const Tensor rows = matmul(be, softmax(be, scores), values.unsqueeze(0));  // [1, n, D]
        copy_into(be, out.select(0, b).narrow(0, start, n).select(1, h),
                  cast(be, rows.squeeze(0), out.dtype()));
      }
    }
  }
}

}  // namespace

Tensor attention(Backend& be, const Tensor& q, const Tensor& k, const Tensor& v,
                 const AttentionParams& params) {
  detail::check_float("attention", "q", be, q);
  detail::check_float("attention", "k", be, k);
  detail::check_float("attention", "v", be, v);
  detail::check_same_dtype("attention", q, k);
  detail::check_same_dtype("attention", q, v);
  DITSERVE_CHECK(q.dim() == 4, "attention: q is ", q.describe(), "; expected [B, Sq, H, D]");
  DITSERVE_CHECK(k.dim() == 4, "attention: k is ", k.describe(), "; expected [B, Sk, H, D]");
  const std::int64_t batch = q.size(0), sq = q.size(1), heads = q.size(2), d = q.size(3);
  const std::int64_t sk = k.size(1);
  DITSERVE_CHECK(k.size(0) == batch && k.size(2) == heads && k.size(3) == d, "attention: k ",
                 k.describe(), " does not match q ", q.describe(), " in batch, heads or head dim");
  DITSERVE_CHECK(v.shape() == k.shape(), "attention: v ", v.describe(), " differs from k ",
                 k.describe());
  DITSERVE_CHECK(sk > 0 && d > 0, "attention: k ", k.describe(),
                 " needs at least one key and a non-empty head dim");
  const float scale = params.scale.value_or(1.0f / std::sqrt(static_cast<float>(d)));
  DITSERVE_CHECK(std::isfinite(scale), "attention: scale ", scale, " is not finite");

  Tensor lengths;
  if (params.key_lengths.defined()) {
    const Tensor& kl = params.key_lengths;
    detail::check_on_backend("attention", "key_lengths", be, kl);
    DITSERVE_CHECK(kl.dtype() == DType::i32 && kl.dim() == 1 && kl.size(0) == batch,
                   "attention: key_lengths is ", kl.describe(), "; expected i32[", batch, "]");
    lengths = contiguous(be, kl);
    if (be.device().is_cpu()) {
      for (std::int64_t b = 0; b < batch; ++b) {
        const std::int32_t len = lengths.data<std::int32_t>()[b];
        DITSERVE_CHECK(len >= 1 && len <= sk, "attention: key_lengths[", b, "] = ", len,
                       " is outside [1, ", sk, "]");
      }
    }
  }
  Tensor bias;
  if (params.bias.defined()) {
    detail::check_float("attention", "bias", be, params.bias);
    detail::check_same_dtype("attention", q, params.bias);
    const Shape scores = {batch, heads, sq, sk};
    DITSERVE_CHECK(broadcasts_to(params.bias.shape(), scores), "attention: bias ",
                   params.bias.describe(), " does not broadcast to the scores ", shape_str(scores));
    bias = params.bias.expand(scores);
  }

  Tensor out = be.empty({batch, sq, heads, d}, q.dtype());
  if (out.numel() == 0) return out;
  const Tensor qv = with_unit_head_dim(be, q), kv = with_unit_head_dim(be, k),
               vv = with_unit_head_dim(be, v);
  if (be.device().is_cpu()) {
    cpu::attention(out, qv, kv, vv, scale, lengths, bias);
  } else {
    DITSERVE_ON_CUDA({
      auto& cuda_be = cuda::as_cuda(be);
      if (d > cuda::kMaxDirectHeadDim) {
        DITSERVE_CHECK(!lengths.defined(), "attention: key_lengths with head dim ", d,
                       " > ", cuda::kMaxDirectHeadDim, " is not supported on CUDA");
        attention_by_products(be, out, qv, kv, vv, scale, bias);
        return out;
      }
      // Short sequences (temporal attention over a few frames): one warp per (batch,
      // head) beats a flash kernel whose tiles would run mostly empty.
      if (!lengths.defined() && !bias.defined() && cuda::short_kernels_enabled() &&
          cuda::attention_short(cuda_be, out, qv, kv, vv, scale))
        return out;
      // Few keys (cross-attention to a caption, a small frame): all of a head's keys in
      // shared memory, D = 72 without padding it to a flash kernel's 128-wide tiles.
      if (!bias.defined() && cuda::short_kernels_enabled() &&
          cuda::attention_few_keys(cuda_be, out, qv, kv, vv, scale, lengths))
        return out;
      const bool fused = q.dtype() != DType::f32 &&
                         cuda::attention_cudnn(cuda_be, out, qv, kv, vv, scale, lengths, bias);
      if (!fused) cuda::attention_direct(cuda_be, out, qv, kv, vv, scale, lengths, bias);
    });
  }
  return out;
}

}  // namespace ditserve
