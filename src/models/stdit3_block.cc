#include "models/stdit3_block.h"

#include <cmath>

#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/qk_norm.h"
#include "kernels/rope.h"
#include "kernels/timing.h"
#include "models/stdit3.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

constexpr float kNormEps = 1e-6f;  // norm1, norm2 and the q/k RMSNorm

// Stage boundaries for a benchmark's Timeline (kernels/timing.h); free when none is active.
void mark(const Backend& be, bool temporal, const char* spatial_label, const char* temporal_label) {
  timeline_mark(be, temporal ? temporal_label : spatial_label);
}
#define DITSERVE_MARK(be, stage) mark(be, temporal_, "spatial." stage, "temporal." stage)

// Row k of the per-sample modulation [B, 6, C] as [B, 1, 1, C], broadcastable to tokens.
Tensor modulation(const Tensor& mod, std::int64_t k) {
  return mod.select(1, k).unsqueeze(1).unsqueeze(1);
}

void append_linear(std::vector<ParamSpec>& specs, const std::string& name, std::int64_t out,
                   std::int64_t in) {
  specs.push_back({name + ".weight", {out, in}, ParamInit::normal, 0.02f});
  specs.push_back({name + ".bias", {out}, ParamInit::zeros, 0.0f});
}

}  // namespace

void STDiT3Block::append_params(std::vector<ParamSpec>& specs, const STDiT3Config& config,
                                const std::string& prefix) {
  const std::int64_t c = config.hidden_size;
  // PixArt's init: torch.randn(6, C) / sqrt(C).
  specs.push_back({prefix + "scale_shift_table", {6, c}, ParamInit::normal,
                   static_cast<float>(1.0 / std::sqrt(static_cast<double>(c)))});
  append_linear(specs, prefix + "attn.qkv", 3 * c, c);
  if (config.qk_norm) {
    specs.push_back({prefix + "attn.q_norm.weight", {config.head_dim()}, ParamInit::ones, 0.0f});
    specs.push_back({prefix + "attn.k_norm.weight", {config.head_dim()}, ParamInit::ones, 0.0f});
  }
  append_linear(specs, prefix + "attn.proj", c, c);
  append_linear(specs, prefix + "cross_attn.q_linear", c, c);
  append_linear(specs, prefix + "cross_attn.kv_linear", 2 * c, c);
  append_linear(specs, prefix + "cross_attn.proj", c, c);
  append_linear(specs, prefix + "mlp.fc1", config.mlp_hidden(), c);
  append_linear(specs, prefix + "mlp.fc2", c, config.mlp_hidden());
}

STDiT3Block::STDiT3Block(const STDiT3Config& config, const WeightLoader& w, bool temporal)
    : temporal_(temporal),
      heads_(config.num_heads),
      head_dim_(config.head_dim()),
      qk_norm_(config.qk_norm) {
  const std::int64_t c = config.hidden_size;
  const std::int64_t hidden = config.mlp_hidden();
  scale_shift_table_ = w.load("scale_shift_table", {6, c});
  qkv_w_ = w.load("attn.qkv.weight", {3 * c, c});
  qkv_b_ = w.load("attn.qkv.bias", {3 * c});
  if (qk_norm_) {
    q_norm_ = w.load("attn.q_norm.weight", {head_dim_});
    k_norm_ = w.load("attn.k_norm.weight", {head_dim_});
  }
  proj_w_ = w.load("attn.proj.weight", {c, c});
  proj_b_ = w.load("attn.proj.bias", {c});
  q_w_ = w.load("cross_attn.q_linear.weight", {c, c});
  q_b_ = w.load("cross_attn.q_linear.bias", {c});
  kv_w_ = w.load("cross_attn.kv_linear.weight", {2 * c, c});
  kv_b_ = w.load("cross_attn.kv_linear.bias", {2 * c});
  cross_proj_w_ = w.load("cross_attn.proj.weight", {c, c});
  cross_proj_b_ = w.load("cross_attn.proj.bias", {c});
  fc1_w_ = w.load("mlp.fc1.weight", {hidden, c});
  fc1_b_ = w.load("mlp.fc1.bias", {hidden});
  fc2_w_ = w.load("mlp.fc2.weight", {c, hidden});
  fc2_b_ = w.load("mlp.fc2.bias", {c});
}

Tensor STDiT3Block::self_attention(Backend& be, const Tensor& h,
                                   const Tensor& rope_angles) const {
  const std::int64_t b = h.size(0), f = h.size(1), p = h.size(2), c = h.size(3);
  if (!temporal_) {
    // Open-Sora views qkv as (B, N, 3, heads, head_dim): one sequence per frame.
    const Tensor qkv = linear(be, h.view({b * f, p, c}), qkv_w_, qkv_b_)
                           .view({b * f, p, 3, heads_, head_dim_});
    DITSERVE_MARK(be, "qkv");
    return attend(be, qkv, rope_angles).view({b, f, p, c});
  }
  // Open-Sora attends over the frames of each (sample, position), which it gathers with a
  // permute to (B, P, F, C). Here q, k and v come out as three [B, F, P, C] blocks in h's
  // own row order; block j viewed as [B, F, P * heads, head_dim] (P's stride C is heads *
  // head_dim) holds the same head vectors, position p's head i as head p * heads + i, so
  // attention over F for each of the P * heads heads is Open-Sora's temporal attention
  // and its output rows are h's rows: no permuted copy either way.
  const Tensor qkv = linear_stacked(be, h, qkv_w_, qkv_b_, 3)
                         .view({3, b, f, p * heads_, head_dim_})
                         .permute({1, 2, 0, 3, 4});
  DITSERVE_MARK(be, "qkv");
  return attend(be, qkv, rope_angles).view({b, f, p, c});
}

Tensor STDiT3Block::attend(Backend& be, const Tensor& qkv, const Tensor& rope_angles) const {
  Tensor q = qkv.select(2, 0);
  Tensor k = qkv.select(2, 1);
  const Tensor v = qkv.select(2, 2);
  if (qk_norm_) {
    // RoPE after the q/k norm, as Open-Sora (qk_norm_legacy=False); possibly in place
    // on qkv, which the caller owns.
    NormedQK qk = qk_norm_rope(be, qkv, q_norm_, k_norm_, kNormEps, rope_angles);
    q = std::move(qk.q);
    k = std::move(qk.k);
  } else if (rope_angles.defined()) {
    q = apply_rope(be, q, rope_angles);
    k = apply_rope(be, k, rope_angles);
  }
  DITSERVE_MARK(be, "qk_norm_rope");
  Tensor o = attention(be, q, k, v);
  DITSERVE_MARK(be, "self_attention");
  return o;
}

Tensor STDiT3Block::cross_attention(Backend& be, const Tensor& x, const STDiT3Step& step) const {
  const std::int64_t b = x.size(0), c = x.size(3);
  const std::int64_t n = x.size(1) * x.size(2);
  const std::int64_t len = step.captions.size(1);
  // All tokens of sample b query its caption; kv_linear packs (2, heads, head_dim), k first.
  const Tensor q = linear(be, x.view({b, n, c}), q_w_, q_b_).view({b, n, heads_, head_dim_});
  const Tensor kv =
      linear(be, step.captions, kv_w_, kv_b_).view({b, len, 2, heads_, head_dim_});
  DITSERVE_MARK(be, "cross_q_kv");
  AttentionParams params;
  params.key_lengths = step.caption_lengths;
  const Tensor o = attention(be, q, kv.select(2, 0), kv.select(2, 1), params);
  DITSERVE_MARK(be, "cross_attention");
  // The ungated residual add rides in the projection's epilogue.
  Tensor out = linear_residual(be, o.view(x.shape()), cross_proj_w_, cross_proj_b_, x);
  DITSERVE_MARK(be, "cross_proj_residual");
  return out;
}

Tensor STDiT3Block::forward(Backend& be, const Tensor& tokens, const STDiT3Step& step) const {
  const std::int64_t b = tokens.size(0), c = tokens.size(3);
  // shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
  const Tensor mod = add(be, scale_shift_table_.unsqueeze(0), step.t_mlp.view({b, 6, c}));
  DITSERVE_MARK(be, "modulation");

  const Tensor h = modulate_layer_norm(be, tokens, modulation(mod, 0), modulation(mod, 1), kNormEps);
  DITSERVE_MARK(be, "norm1");
  const Tensor o = self_attention(be, h, temporal_ ? step.rope_angles : Tensor());
  // In both kinds of block o's rows are the tokens' rows: the gated residual rides in the
  // projection's epilogue.
  Tensor x = linear_residual(be, o, proj_w_, proj_b_, tokens, mod.select(1, 2));
  DITSERVE_MARK(be, "proj_gate_residual");
  x = cross_attention(be, x, step);  // x + its cross-attention: no norm, no gate

  Tensor m = modulate_layer_norm(be, x, modulation(mod, 3), modulation(mod, 4), kNormEps);
  DITSERVE_MARK(be, "norm2");
  m = linear(be, m, fc1_w_, fc1_b_, Activation::gelu_tanh);
  DITSERVE_MARK(be, "fc1_gelu");
  Tensor out = linear_residual(be, m, fc2_w_, fc2_b_, x, mod.select(1, 5));
  DITSERVE_MARK(be, "fc2_gate_residual");
  return out;
}

#undef DITSERVE_MARK

}  // namespace ditserve
