#include "models/wan_block.h"

#include <cmath>
#include <string>

#include "kernels/attention.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/timing.h"
#include "models/wan_transformer.h"

namespace ditserve {
namespace {

enum class Part {
  table,
  q,
  k,
  v,
  o,
  norm_q,
  norm_k,
  cross_norm,
  cross_q,
  cross_k,
  cross_v,
  cross_o,
  cross_norm_q,
  cross_norm_k,
  ffn1,
  ffn2
};

// A block tensor's name without the ".weight"/".bias" suffix (the table has none).
std::string part_name(WanLayout layout, std::int64_t index, Part part) {
  const std::string p = "blocks." + std::to_string(index) + ".";
  const bool original = layout == WanLayout::original;
  const std::string self = original ? "self_attn." : "attn1.";
  const std::string cross = original ? "cross_attn." : "attn2.";
  switch (part) {
    case Part::table:
      return p + (original ? "modulation" : "scale_shift_table");
    case Part::q:
      return p + self + (original ? "q" : "to_q");
    case Part::k:
      return p + self + (original ? "k" : "to_k");
    case Part::v:
      return p + self + (original ? "v" : "to_v");
    case Part::o:
      return p + self + (original ? "o" : "to_out.0");
    case Part::norm_q:
      return p + self + "norm_q";
    case Part::norm_k:
      return p + self + "norm_k";
    // The affine LayerNorm before the cross-attention: Wan's norm3 is diffusers' norm2.
    case Part::cross_norm:
      return p + (original ? "norm3" : "norm2");
    case Part::cross_q:
      return p + cross + (original ? "q" : "to_q");
    case Part::cross_k:
      return p + cross + (original ? "k" : "to_k");
    case Part::cross_v:
      return p + cross + (original ? "v" : "to_v");
    case Part::cross_o:
      return p + cross + (original ? "o" : "to_out.0");
    case Part::cross_norm_q:
      return p + cross + "norm_q";
    case Part::cross_norm_k:
      return p + cross + "norm_k";
    case Part::ffn1:
      return p + (original ? "ffn.0" : "ffn.net.0.proj");
    case Part::ffn2:
      return p + (original ? "ffn.2" : "ffn.net.2");
  }
  return {};
}

void append_linear(std::vector<ParamSpec>& specs, const std::string& name, std::int64_t out,
                   std::int64_t in) {
  specs.push_back({name + ".weight", {out, in}, ParamInit::normal, 0.02f});
  specs.push_back({name + ".bias", {out}, ParamInit::zeros, 0.0f});
}

}  // namespace

void WanBlock::append_params(std::vector<ParamSpec>& specs, const WanConfig& config,
                             WanLayout layout, std::int64_t index) {
  const std::int64_t c = config.dim;
  const auto name = [&](Part part) { return part_name(layout, index, part); };
  // torch.randn(1, 6, dim) / dim**0.5 in both releases.
  specs.push_back({name(Part::table),
                   {1, 6, c},
                   ParamInit::normal,
                   static_cast<float>(1.0 / std::sqrt(static_cast<double>(c)))});
  for (const Part part : {Part::q, Part::k, Part::v, Part::o})
    append_linear(specs, name(part), c, c);
  specs.push_back({name(Part::norm_q) + ".weight", {c}, ParamInit::ones, 0.0f});
  specs.push_back({name(Part::norm_k) + ".weight", {c}, ParamInit::ones, 0.0f});
  specs.push_back({name(Part::cross_norm) + ".weight", {c}, ParamInit::ones, 0.0f});
  specs.push_back({name(Part::cross_norm) + ".bias", {c}, ParamInit::zeros, 0.0f});
  for (const Part part : {Part::cross_q, Part::cross_k, Part::cross_v, Part::cross_o}) {
    append_linear(specs, name(part), c, c);
  }
  specs.push_back({name(Part::cross_norm_q) + ".weight", {c}, ParamInit::ones, 0.0f});
  specs.push_back({name(Part::cross_norm_k) + ".weight", {c}, ParamInit::ones, 0.0f});
  append_linear(specs, name(Part::ffn1), config.ffn_dim, c);
  append_linear(specs, name(Part::ffn2), c, config.ffn_dim);
}

WanBlock::WanBlock(const WanConfig& config, const WeightLoader& w, WanLayout layout,
                   std::int64_t index)
    : heads_(config.num_heads), head_dim_(config.head_dim()), eps_(config.eps) {
  const std::int64_t c = config.dim;
  Backend& be = w.backend();
  const auto name = [&](Part part) { return part_name(layout, index, part); };
  const auto linear_of = [&](Part part, std::int64_t out, std::int64_t in) {
    return Linear{w.load(name(part) + ".weight", {out, in}), w.load(name(part) + ".bias", {out})};
  };
  table_ = w.load(name(Part::table), {1, 6, c});
  const Linear q = linear_of(Part::q, c, c), k = linear_of(Part::k, c, c),
               v = linear_of(Part::v, c, c);
  qkv_ = {concat(be, {q.w, k.w, v.w}, 0), concat(be, {q.b, k.b, v.b}, 0)};
  norm_q_ = w.load(name(Part::norm_q) + ".weight", {c});
  norm_k_ = w.load(name(Part::norm_k) + ".weight", {c});
  o_ = linear_of(Part::o, c, c);
  cross_norm_w_ = w.load(name(Part::cross_norm) + ".weight", {c});
  cross_norm_b_ = w.load(name(Part::cross_norm) + ".bias", {c});
  cross_q_ = linear_of(Part::cross_q, c, c);
  cross_k_ = linear_of(Part::cross_k, c, c);
  cross_v_ = linear_of(Part::cross_v, c, c);
  cross_o_ = linear_of(Part::cross_o, c, c);
  cross_norm_q_ = w.load(name(Part::cross_norm_q) + ".weight", {c});
  cross_norm_k_ = w.load(name(Part::cross_norm_k) + ".weight", {c});
  ffn1_ = linear_of(Part::ffn1, config.ffn_dim, c);
  ffn2_ = linear_of(Part::ffn2, c, config.ffn_dim);
}

Tensor WanBlock::modulation(Backend& be, const WanStep& step, std::int64_t k) const {
  // (table + e0)[:, k]: shift_msa, scale_msa, gate_msa, shift_ffn, scale_ffn, gate_ffn.
  return add(be, table_.select(1, k), step.modulation.select(1, k)).unsqueeze(1);
}

Tensor WanBlock::attention_inputs(Backend& be, const Tensor& x, std::int64_t first,
                                  const WanStep& step) const {
  const std::int64_t b = x.size(0), n = x.size(1), c = x.size(2);
  const Tensor h =
      modulate_layer_norm(be, x, modulation(be, step, 0), modulation(be, step, 1), eps_);
  const Tensor qkv = linear(be, h, qkv_.w, qkv_.b).view({b, n, 3, c});
  timeline_mark(be, "norm1_qkv");  // stage boundaries for `bench step --breakdown`
  // RMSNorm over all heads together (Wan's norm_q / norm_k span the full dim).
  const Tensor q = rms_norm(be, qkv.select(2, 0), norm_q_, eps_).view({b, n, heads_, head_dim_});
  const Tensor k = rms_norm(be, qkv.select(2, 1), norm_k_, eps_).view({b, n, heads_, head_dim_});
  const Tensor angles = step.rope_angles.narrow(0, first, n);
  const Tensor v = qkv.view({b, n, 3, heads_, head_dim_}).select(2, 2).unsqueeze(2);
  Tensor out = concat(
      be, {apply_rope(be, q, angles).unsqueeze(2), apply_rope(be, k, angles).unsqueeze(2), v}, 2);
  timeline_mark(be, "qk_norm_rope");
  return out;
}

Tensor WanBlock::finish(Backend& be, const Tensor& x, const Tensor& attended,
                        const WanStep& step) const {
  const std::int64_t b = x.size(0), n = x.size(1), c = x.size(2);
  timeline_mark(be, "self_attention");  // run by the stage driver between the two calls
  // Wan adds gate * y onto the residual in f32 (autocast off) and keeps x in f32; here x is
  // in the model dtype, and linear_residual rounds once, after the f32 sum (the gate is
  // folded into the bf16 weight on CUDA), where linear + gated_residual rounded y first.
  Tensor out = linear_residual(be, contiguous(be, attended).view({b, n, c}), o_.w, o_.b, x,
                               modulation(be, step, 2).squeeze(1));
  timeline_mark(be, "o_gate_residual");

  // Cross-attention to all text_len caption rows (Wan passes no caption mask).
  const std::int64_t len = step.context.size(1);
  const Tensor h = layer_norm(be, out, cross_norm_w_, cross_norm_b_, eps_);
  const Tensor q = rms_norm(be, linear(be, h, cross_q_.w, cross_q_.b), cross_norm_q_, eps_)
                       .view({b, n, heads_, head_dim_});
  const Tensor k =
      rms_norm(be, linear(be, step.context, cross_k_.w, cross_k_.b), cross_norm_k_, eps_)
          .view({b, len, heads_, head_dim_});
  const Tensor v =
      linear(be, step.context, cross_v_.w, cross_v_.b).view({b, len, heads_, head_dim_});
  const Tensor a = attention(be, q, k, v).view({b, n, c});
  out = linear_residual(be, a, cross_o_.w, cross_o_.b, out);
  timeline_mark(be, "cross_attention");

  Tensor m = modulate_layer_norm(be, out, modulation(be, step, 3), modulation(be, step, 4), eps_);
  m = linear(be, m, ffn1_.w, ffn1_.b, Activation::gelu_tanh);
  timeline_mark(be, "norm2_ffn1_gelu");
  out = linear_residual(be, m, ffn2_.w, ffn2_.b, out, modulation(be, step, 5).squeeze(1));
  timeline_mark(be, "ffn2_gate_residual");
  return out;
}

}  // namespace ditserve
