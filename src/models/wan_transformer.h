#pragma once
// The Wan 2.1 text-to-video diffusion transformer (Wan-Video/Wan2.1 `WanModel`, diffusers'
// `WanTransformer3DModel`): a Conv3d (1, 2, 2) patch embedding, full 3D self-attention over
// all latent tokens with q/k RMSNorm and 3D RoPE, cross-attention to the text (affine
// LayerNorm before it, q/k RMSNorm), a GELU(tanh) feed-forward, all modulated by a 6-way
// time projection plus each block's learned table; a 2-way modulated head. Loaded by
// either public naming (WanLayout). Activations are in the loader's dtype (f32 on CPU,
// bf16 on CUDA). The forward is split into stages (parallel/token_stages.h) so Ulysses
// can shard the tokens.

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "models/device_tables.h"
#include "models/interfaces.h"
#include "models/weights.h"
#include "parallel/token_stages.h"

namespace ditserve {

struct WanConfig {
  std::int64_t dim = 1536;
  std::int64_t ffn_dim = 8960;
  std::int64_t num_layers = 30;
  std::int64_t num_heads = 12;
  std::array<std::int64_t, 3> patch_size{1, 2, 2};  // (t, h, w)
  std::int64_t in_channels = 16;
  std::int64_t out_channels = 16;
  std::int64_t text_dim = 4096;  // the text encoder's hidden size
  std::int64_t text_len = 512;   // captions are zero-padded to this many tokens
  std::int64_t freq_dim = 256;   // timestep sinusoid width
  float eps = 1e-6f;
  double rope_theta = 10000.0;

  std::int64_t head_dim() const { return dim / num_heads; }
  // RoPE channels per head rotating with (frame, row, column): d - 4(d/6), 2(d/6), 2(d/6),
  // as Wan 2.1 builds them. (diffusers splits its table as d - 2(d/3), d/3, d/3, which is
  // the same for the released head_dim 128 and for 24 (tiny-wan), not for every d.)
  std::array<std::int64_t, 3> rope_dims() const;
  // Throws InvalidArgument naming the first inconsistent field.
  void validate() const;
};

WanConfig wan_t2v_1_3b();  // Wan2.1-T2V-1.3B: dim 1536, 30 layers, 12 heads
WanConfig wan_t2v_14b();   // Wan2.1-T2V-14B: dim 5120, 40 layers, 40 heads
// For CI: dim 96, 2 layers, 4 heads of 24, ffn 192, text_dim 64 / text_len 64 (umt5_tiny).
WanConfig wan_tiny();

// The public namings of a Wan DiT checkpoint.
enum class WanLayout {
  // Wan-Video/Wan2.1's WanModel: patch_embedding, text_embedding.{0,2}, time_embedding.{0,2},
  // time_projection.1, blocks.{i}.{self_attn,cross_attn}.{q,k,v,o,norm_q,norm_k},
  // blocks.{i}.norm3 (the affine cross-attention norm), blocks.{i}.ffn.{0,2},
  // blocks.{i}.modulation, head.head, head.modulation.
  original,
  // diffusers' WanTransformer3DModel: condition_embedder.{time_embedder.linear_{1,2},
  // time_proj, text_embedder.linear_{1,2}}, blocks.{i}.attn{1,2}.{to_q,to_k,to_v,to_out.0,
  // norm_q,norm_k}, blocks.{i}.norm2 (affine), blocks.{i}.ffn.net.{0.proj,2},
  // blocks.{i}.scale_shift_table, proj_out, scale_shift_table.
  diffusers,
};

// Every tensor with its public name and PyTorch shape. Both layouts list the same tensors
// in the same order (spec i of one layout is spec i of the other).
std::vector<ParamSpec> wan_parameters(const WanConfig& config, WanLayout layout);
// The layout of the checkpoint behind `weights`: diffusers when it holds proj_out.weight,
// original when it holds head.head.weight; throws InvalidArgument naming both otherwise.
WanLayout detect_wan_layout(const WeightLoader& weights);

// What one evaluation shares across blocks (computed once per step by prepare()).
struct WanStep {
  std::int64_t batch = 0;
  std::array<std::int64_t, 3> grid{};  // tokens along (frames, rows, columns)
  Tensor time;                         // [B, dim]: the time embedding (the head's condition)
  Tensor modulation;                   // [B, 6, dim]: the time projection shared by all blocks
  Tensor context;                      // [B, text_len, dim]: the embedded, zero-padded captions
  Tensor rope_angles;                  // f32 [N, head_dim / 2] for the N = grid product tokens

  std::int64_t tokens() const { return grid[0] * grid[1] * grid[2]; }
};

class WanBlock;

class WanTransformer final : public DiffusionTransformer {
 public:
  // Loads every tensor of wan_parameters(config, detect_wan_layout(weights)) onto
  // weights.backend() in weights.dtype(). A checkpoint of another size fails with
  // InvalidArgument naming the tensor and both shapes.
  WanTransformer(WanConfig config, const WeightLoader& weights);
  ~WanTransformer() override;
  WanTransformer(const WanTransformer&) = delete;
  WanTransformer& operator=(const WanTransformer&) = delete;

  std::int64_t latent_channels() const override { return config_.in_channels; }
  // latents f32 [B, in_channels, T, H, W] (T, H, W multiples of the patch) -> f32
  // [B, out_channels, T, H, W]. Caption rows at or past caption_lengths[b] are zeroed and
  // the captions zero-padded to text_len, as Wan's pipelines do; cross-attention then
  // attends to all text_len rows (Wan applies no caption mask). fps/height/width unused.
  Tensor forward(const DenoiseInputs& inputs) override;

  // Validates `inputs` (InvalidArgument naming the field) and computes the shared state.
  WanStep prepare(const DenoiseInputs& inputs);
  // latents -> tokens [B, N, dim] (N = frames x rows x columns, row-major).
  Tensor embed(const Tensor& latents, const WanStep& step);
  // See FullAttentionStages::attention_inputs / finish_block.
  Tensor attention_inputs(std::int64_t block, const Tensor& tokens, std::int64_t first,
                          const WanStep& step);
  Tensor finish_block(std::int64_t block, const Tensor& tokens, const Tensor& attended,
                      const WanStep& step);
  // tokens [B, N, dim] -> f32 [B, out_channels, T, H, W].
  Tensor final(const Tensor& tokens, const WanStep& step);

  // One evaluation of `inputs` as stages a Ulysses step can shard; this model must
  // outlive them.
  std::unique_ptr<FullAttentionStages> prepare_stages(const DenoiseInputs& inputs);

  const WanConfig& config() const { return config_; }
  WanLayout layout() const { return layout_; }
  Backend& backend() const { return be_; }
  DType dtype() const { return dtype_; }

 private:
  struct Embedders;

  WanConfig config_;
  WanLayout layout_;
  Backend& be_;
  DType dtype_;
  std::unique_ptr<Backend> host_;
  std::unique_ptr<Embedders> embed_;
  std::vector<WanBlock> blocks_;
  // RoPE angles by token grid (reused by every later step of that grid).
  DeviceTableCache<std::array<std::int64_t, 3>> rope_angles_{8};
  Tensor zero_;  // [1] in the compute dtype: the captions' padding value
  Tensor caption_mask_table_;  // [text_len + 1, text_len]: row n is n ones (built once)
};

}  // namespace ditserve
