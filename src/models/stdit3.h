#pragma once
// STDiT3 (Open-Sora 1.2's diffusion transformer): alternating spatial and temporal
// adaLN-single blocks with cross-attention to the caption, loaded by Open-Sora's tensor
// names. The forward is split into stages so a sequence-parallel step can shard it:
// prepare() computes what every block shares, embed() makes tokens [B, T, S, C],
// spatial_block() runs on any subset of frames, temporal_block() on any subset of
// spatial positions, and final() turns the full token grid into the prediction.
// Activations are in the loader's dtype (f32 on CPU, bf16 on CUDA). Open-Sora's x_mask
// (per-frame conditioning for image/video-to-video) is not taken: text-to-video passes it
// all-True, where it changes nothing.

#include <array>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "models/device_tables.h"
#include "models/interfaces.h"
#include "models/weights.h"
#include "parallel/stages.h"

namespace ditserve {

struct STDiT3Config {
  std::int64_t hidden_size = 1152;
  std::int64_t depth = 28;  // spatial blocks; as many temporal blocks
  std::int64_t num_heads = 16;
  std::array<std::int64_t, 3> patch_size{1, 2, 2};  // (t, h, w)
  std::int64_t in_channels = 4;
  bool pred_sigma = true;  // out_channels = 2 * in_channels (velocity + unused sigma)
  double mlp_ratio = 4.0;
  std::int64_t caption_channels = 4096;
  std::int64_t model_max_length = 300;  // rows of the null caption y_embedding
  bool qk_norm = true;
  std::int64_t input_sq_size = 512;  // the pixel size where the position scale is 1
  std::int64_t frequency_embedding_size = 256;  // timestep / fps sinusoid width
  double rope_theta = 10000.0;

  std::int64_t out_channels() const { return pred_sigma ? 2 * in_channels : in_channels; }
  std::int64_t head_dim() const { return hidden_size / num_heads; }
  std::int64_t mlp_hidden() const { return static_cast<std::int64_t>(hidden_size * mlp_ratio); }
  // Throws InvalidArgument naming the first inconsistent field.
  void validate() const;
};

// The published STDiT3-XL/2 (hpcai-tech/OpenSora-STDiT-v3).
STDiT3Config stdit3_xl_2();
// The same architecture scaled down for CI (hidden 64, depth 2, 4 heads, captions of 32).
STDiT3Config stdit3_tiny();

// Every tensor of Open-Sora's state dict (y_embedder.y_embedding included), PyTorch shapes.
// Random weights give rope.freqs its real table (ParamInit::rope_frequencies).
std::vector<ParamSpec> stdit3_parameters(const STDiT3Config& config);

// What one evaluation shares across blocks (computed once per step by prepare()).
struct STDiT3Step {
  std::int64_t batch = 0;
  std::array<std::int64_t, 3> grid{};    // tokens along (t, h, w) after padding
  std::array<std::int64_t, 3> latent{};  // the input's T, H, W (the output is cropped to it)
  Tensor t;                // [B, C]: timestep + fps embedding (the final layer's condition)
  Tensor t_mlp;            // [B, 6C]: adaLN-single modulation shared by all blocks
  Tensor captions;         // [B, L, C]: projected caption tokens
  Tensor caption_lengths;  // i32 [B]: sample b attends to its first caption_lengths[b]
  Tensor pos_embed;        // [S, C]: the 2D sin-cos table added to every frame
  Tensor rope_angles;      // f32 [grid[0], head_dim / 2]: temporal RoPE

  std::int64_t frames() const { return grid[0]; }
  std::int64_t tokens_per_frame() const { return grid[1] * grid[2]; }
};

class STDiT3Block;

class STDiT3 final : public DiffusionTransformer {
 public:
  // Loads every tensor of stdit3_parameters(config) through `weights` (names relative to
  // its prefix) onto weights.backend() in weights.dtype().
  STDiT3(STDiT3Config config, const WeightLoader& weights);
  ~STDiT3() override;
  STDiT3(const STDiT3&) = delete;
  STDiT3& operator=(const STDiT3&) = delete;

  std::int64_t latent_channels() const override { return config_.in_channels; }
  // The first in_channels output channels (the velocity), f32 [B, C, T, H, W].
  Tensor forward(const DenoiseInputs& inputs) override;
  // All out_channels channels, f32 [B, out_channels, T, H, W].
  Tensor forward_full(const DenoiseInputs& inputs);

  // Validates `inputs` (InvalidArgument naming the field) and computes the shared state.
  STDiT3Step prepare(const DenoiseInputs& inputs);
  // latents f32 [B, in_channels, T, H, W] -> tokens [B, T', S, C] with the position table.
  Tensor embed(const Tensor& latents, const STDiT3Step& step);
  // tokens [B, F, S, C] for any F frames (all S positions) -> same shape.
  Tensor spatial_block(std::int64_t index, const Tensor& tokens, const STDiT3Step& step);
  // tokens [B, T', P, C] for any P spatial positions (all T' frames) -> same shape.
  Tensor temporal_block(std::int64_t index, const Tensor& tokens, const STDiT3Step& step);
  // tokens [B, T', S, C] -> f32 [B, out_channels, T, H, W] (unpatchified, cropped).
  Tensor final(const Tensor& tokens, const STDiT3Step& step);
  // The same for the whole token frames [first, first + F) of the grid alone (the final
  // layer is per token): tokens [B, F, S, C] -> f32 [B, out_channels, T_f, H, W], the
  // latent frames those token frames cover (cropped at the end of the video).
  Tensor final_frames(const Tensor& tokens, std::int64_t first, const STDiT3Step& step);

  // One evaluation of `inputs` (validated and prepared here) as stages that a
  // sequence-parallel step can shard; final() returns what forward() does. This model
  // must outlive them.
  std::unique_ptr<SpatioTemporalStages> prepare_stages(const DenoiseInputs& inputs);

  // The null caption for classifier-free guidance: y_embedding's first `length` rows,
  // [1, length, caption_channels] in the compute dtype.
  Tensor null_captions(std::int64_t length) const;

  const STDiT3Config& config() const { return config_; }
  Backend& backend() const { return be_; }
  DType dtype() const { return dtype_; }

 private:
  struct Embedders;

  STDiT3Config config_;
  Backend& be_;
  DType dtype_;
  std::unique_ptr<Backend> host_;  // for small host-side tables (position, RoPE, fps)
  std::unique_ptr<Embedders> embed_;
  std::vector<STDiT3Block> spatial_;
  std::vector<STDiT3Block> temporal_;
  // prepare()'s tables, per key (read-only once handed out in a step): the position table
  // by (rows, cols, scale), the RoPE angles by frames, the fps input by (batch, fps).
  static constexpr std::size_t kTablesKept = 8;
  DeviceTableCache<std::array<double, 3>> pos_embed_{kTablesKept};
  DeviceTableCache<std::int64_t> rope_angles_{kTablesKept};
  DeviceTableCache<std::pair<std::int64_t, float>> fps_{kTablesKept};
  Tensor zero_;  // [1] in the compute dtype: embed()'s padding value
};

}  // namespace ditserve
