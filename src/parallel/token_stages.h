#pragma once
// What Ulysses sequence parallelism needs from a full-attention DiT (Wan 2.1 and kin),
// without knowing the model: its forward over a token sequence [B, N, C], each block cut
// at its self-attention. Everything outside the self-attention acts token by token (the
// time modulation, the cross-attention to the caption, the feed-forward), so it runs on
// any shard of rows; only the attention itself needs the whole sequence. parallel/ sits
// below models/: a model implements this interface (WanTransformer::prepare_stages).

#include <cstdint>

#include "kernels/backend.h"

namespace ditserve {

// One evaluation of the network, prepared on one device from that device's copy of the
// step's inputs (timestep and caption embeddings, RoPE table). The model replica it was
// made from must outlive it. Not thread-safe; one per group member and step.
class FullAttentionStages {
 public:
  virtual ~FullAttentionStages() = default;

  virtual Backend& backend() const = 0;
  virtual std::int64_t depth() const = 0;            // blocks
  virtual std::int64_t heads() const = 0;            // self-attention heads
  virtual std::int64_t head_dim() const = 0;         // channels per head
  virtual std::int64_t sequence_length() const = 0;  // N, tokens of the whole grid

  // The whole token sequence [B, N, C] of the prepared inputs.
  virtual Tensor embed() = 0;
  // tokens [B, n, C], rows [first, first + n) of the sequence (n >= 1) -> the block's
  // self-attention inputs [B, n, 3, heads, head_dim] (q, k, v; normalised and rotated as
  // the attention over the whole sequence takes them; softmax scale 1/sqrt(head_dim)).
  virtual Tensor attention_inputs(std::int64_t block, const Tensor& tokens, std::int64_t first) = 0;
  // tokens [B, n, C] and their self-attention output [B, n, heads, head_dim] -> the
  // block's output [B, n, C].
  virtual Tensor finish_block(std::int64_t block, const Tensor& tokens, const Tensor& attended) = 0;
  // The whole sequence [B, N, C] -> the model's prediction (what its forward returns).
  virtual Tensor final(const Tensor& tokens) = 0;
};

}  // namespace ditserve
