#pragma once
// What a sequence-parallel step needs from a spatio-temporal DiT (STDiT3 and kin), without
// knowing the model: its forward as stages over a token grid [B, T, S, C] (T frames of S
// spatial positions). parallel/ sits below models/, so a model implements this interface
// and the caller, who knows the model's inputs, prepares one instance per group member.

#include <cstdint>

#include "kernels/backend.h"
#include "tensor/error.h"

namespace ditserve {

// One evaluation of the network, prepared on one device: it holds that device's copy of
// the step's inputs and of what every block shares (timestep and caption embeddings,
// position tables), computed when it was made. The model replica it was made from must
// outlive it. Not thread-safe; one per group member and step.
class SpatioTemporalStages {
 public:
  virtual ~SpatioTemporalStages() = default;

  virtual Backend& backend() const = 0;
  // Number of (spatial block, temporal block) pairs; the forward is embed, then pairs
  // 0..depth()-1 (spatial then temporal), then final.
  virtual std::int64_t depth() const = 0;

  // The whole token grid [B, T, S, C] of the prepared inputs.
  virtual Tensor embed() = 0;
  // tokens [B, F, S, C] holding any F >= 1 whole frames -> the same shape. Must give each
  // frame the result it gets inside the whole grid (attention stays within a frame).
  virtual Tensor spatial_block(std::int64_t index, const Tensor& tokens) = 0;
  // tokens [B, T, P, C] holding all T frames of any P >= 1 positions -> the same shape.
  virtual Tensor temporal_block(std::int64_t index, const Tensor& tokens) = 0;
  // The whole grid [B, T, S, C] -> the model's prediction (what its forward returns).
  virtual Tensor final(const Tensor& tokens) = 0;

  // Optional, for a prediction that stays sharded by frame: whether final_frames() works
  // (the final layer is per token), and the prediction for the latent frames that the
  // whole token frames [first, first + F) of the grid cover, from those tokens alone
  // ([B, F, S, C]). The default has none.
  virtual bool has_final_frames() const { return false; }
  virtual Tensor final_frames(const Tensor& tokens, std::int64_t first) {
    (void)tokens;
    (void)first;
    throw Error("SpatioTemporalStages: this model has no frame-sharded final layer");
  }
};

}  // namespace ditserve
