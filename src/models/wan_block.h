#pragma once
// One Wan 2.1 transformer block (`blocks.{i}`), cut at its self-attention so that
// Ulysses can run the attention on head shards: attention_inputs() is the modulated norm,
// the q/k/v projections, q/k RMSNorm and 3D RoPE; finish() is the output projection and
// gated residual, the cross-attention to the caption and the gated feed-forward.

#include <cstdint>
#include <vector>

#include "models/weights.h"

namespace ditserve {

struct WanConfig;
struct WanStep;
enum class WanLayout;

class WanBlock {
 public:
  // Loads block `index` in `layout`'s names.
  WanBlock(const WanConfig& config, const WeightLoader& weights, WanLayout layout,
           std::int64_t index);

  static void append_params(std::vector<ParamSpec>& specs, const WanConfig& config,
                            WanLayout layout, std::int64_t index);

  // tokens [B, n, C] contiguous, rows [first, first + n) of the step's sequence ->
  // [B, n, 3, heads, head_dim].
  Tensor attention_inputs(Backend& be, const Tensor& tokens, std::int64_t first,
                          const WanStep& step) const;
  // tokens [B, n, C], attended [B, n, heads, head_dim] -> [B, n, C].
  Tensor finish(Backend& be, const Tensor& tokens, const Tensor& attended,
                const WanStep& step) const;

 private:
  struct Linear {
    Tensor w, b;
  };
  // Row k of the per-sample modulation [B, 6, C] as [B, 1, C] (broadcast over tokens).
  Tensor modulation(Backend& be, const WanStep& step, std::int64_t k) const;

  std::int64_t heads_;
  std::int64_t head_dim_;
  float eps_;
  Tensor table_;  // [1, 6, C]: modulation / scale_shift_table
  Linear qkv_;    // self-attention q, k, v stacked: [3C, C]
  Tensor norm_q_, norm_k_;
  Linear o_;
  Tensor cross_norm_w_, cross_norm_b_;
  Linear cross_q_, cross_k_, cross_v_, cross_o_;
  Tensor cross_norm_q_, cross_norm_k_;
  Linear ffn1_, ffn2_;
};

}  // namespace ditserve
