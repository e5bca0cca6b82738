// `ditserve bench step` for Wan 2.1: one denoising step of the Wan DiT (both branches of
// classifier-free guidance as a batch of 2, as WanPipeline does them one after the other),
// and a Wan VAE decode, on random weights generated in memory. With --export-weights and
// --dump-dir it writes what bench/reference/wan_step_reference.py needs to run diffusers'
// WanTransformer3DModel on the same weights (diffusers' tensor names) and inputs.
//
// FLOPs of one Wan DiT evaluation (multiply-adds count 2), per sample, with N tokens
// (latent T*H*W / patch), C = dim, F = ffn_dim, L = text_len caption rows (Wan attends to
// all of them: the captions are zero-padded, not masked), E = text_dim, depth d:
//   self-attention q, k, v, o   2*N*4C^2      full attention over N  4*N^2*C
//   cross-attention q, o        2*N*2C^2      k, v on the captions   2*L*2C^2
//   cross attention             4*N*L*C       feed-forward            2*N*2CF
//   text embedding 2*L*(E*C + C^2), patch embedding and head 2*N*C*(in + out)*pt*ph*pw.
// step FLOPs = B * (d * (2N(6C^2 + 2CF) + 4LC^2 + 4N^2C + 4NLC) + text + ends).

#include <filesystem>
#include <iostream>

#include "cli/bench_step.h"
#include "io/safetensors.h"
#include "kernels/copy.h"
#include "models/prefetched_weights.h"
#include "tensor/error.h"

namespace ditserve::cli {
namespace {

double wan_step_flops(const WanConfig& c, std::int64_t batch, const std::array<std::int64_t, 3>& grid) {
  const double n = static_cast<double>(grid[0] * grid[1] * grid[2]);
  const double ch = static_cast<double>(c.dim), f = static_cast<double>(c.ffn_dim);
  const double l = static_cast<double>(c.text_len), e = static_cast<double>(c.text_dim);
  const double block = 2 * n * (6 * ch * ch + 2 * ch * f) + 4 * l * ch * ch + 4 * n * n * ch + 4 * n * l * ch;
  const double text = 2 * l * (e * ch + ch * ch);
  const auto& p = c.patch_size;
  const double ends = 2 * n * ch * static_cast<double>(c.in_channels + c.out_channels) *
                      static_cast<double>(p[0] * p[1] * p[2]);
  return static_cast<double>(batch) * (static_cast<double>(c.num_layers) * block + text + ends);
}

}  // namespace

void bench_wan_dit(const BenchArgs& a, const ModelSpec& spec, Backend& be, nlohmann::json& out) {
  const WanConfig& cfg = spec.wan_transformer;
  const std::vector<Row> rows = select_rows(a, spec);
  // Wan pads every caption to text_len rows, so the step's cost does not depend on the
  // prompt's length; the rows past caption-tokens are zero, as WanPipeline pads them.
  const std::int64_t len = a.caption_tokens > 0 ? a.caption_tokens : cfg.text_len;
  DITSERVE_CHECK(len <= cfg.text_len, "caption-tokens: ", len, " exceeds the model's text_len ",
                 cfg.text_len);
  DITSERVE_CHECK(a.batch >= 1, "batch: must be >= 1, got ", a.batch);
  const DType dtype = default_dtypes(spec, be.device()).transformer;
  PrefetchedRandomWeights weights(wan_parameters(cfg, WanLayout::diffusers), a.seed);
  if (!a.export_weights.empty()) weights.export_bf16(a.export_weights);
  WanTransformer model(cfg, WeightLoader(weights, be, dtype));

  out["dtype"] = dtype_name(dtype);
  out["batch"] = a.batch;
  out["caption_tokens"] = len;
  out["text_len"] = cfg.text_len;
  out["flop_formula"] =
      "B*(layers*(2N(6C^2+2CF) + 4LC^2 + 4N^2C + 4NLC) + 2L(E*C+C^2) + 2NC(in+out)*patch), "
      "N tokens, C dim, F ffn_dim, L text_len, E text_dim";
  for (const Row& row : rows) {
    std::mt19937_64 rng = row_rng(a, row);
    const auto& lt = row.latent;
    for (int i = 0; i < 3; ++i)
      DITSERVE_CHECK(lt[static_cast<std::size_t>(i)] % cfg.patch_size[static_cast<std::size_t>(i)] == 0,
                     "latent: ", row.name, " is not a multiple of the patch size");
    const Tensor latents = random_host({a.batch, cfg.in_channels, lt[0], lt[1], lt[2]}, rng);
    // Two distinct timesteps, so a batching mistake between the samples would show.
    std::vector<float> ts(static_cast<std::size_t>(a.batch));
    for (std::size_t i = 0; i < ts.size(); ++i) ts[i] = 900.0f - 150.0f * static_cast<float>(i % 5);
    const Tensor timesteps = Tensor::from_vector(ts, {a.batch});
    // UMT5's final layer norm gives rows of about unit scale.
    const Tensor captions = random_host({a.batch, len, cfg.text_dim}, rng, 1.0);
    const Tensor lengths = i32_host(std::vector<std::int32_t>(static_cast<std::size_t>(a.batch),
                                                              static_cast<std::int32_t>(len)));
    const DenoiseInputs in = upload_inputs(be, latents, timesteps, captions, lengths);

    std::array<std::int64_t, 3> grid{};
    for (std::size_t i = 0; i < 3; ++i) grid[i] = lt[i] / cfg.patch_size[i];
    const double flops = wan_step_flops(cfg, a.batch, grid);
    if (a.cuda_graphs) {
      out["rows"].push_back(time_graphed_dit_row(a, be, row, grid, flops, model, in));
      continue;
    }
    Tensor output;
    out["rows"].push_back(time_dit_row(
        a, be, row, grid, flops,
        {{"latents", latents}, {"timesteps", timesteps}, {"captions", captions}, {"caption_lengths", lengths}},
        dtype, output, [&] { output = model.forward(in); }));
  }
  out["config"] = {{"dim", cfg.dim},         {"ffn_dim", cfg.ffn_dim},   {"num_layers", cfg.num_layers},
                   {"num_heads", cfg.num_heads}, {"text_dim", cfg.text_dim}, {"text_len", cfg.text_len},
                   {"freq_dim", cfg.freq_dim}, {"in_channels", cfg.in_channels},
                   {"out_channels", cfg.out_channels}, {"eps", cfg.eps}};
}

void bench_wan_vae(const BenchArgs& a, const ModelSpec& spec, Backend& be, nlohmann::json& out) {
  const WanSampling& defaults = spec.wan_sampling;
  const std::int64_t frames = a.frames > 0 ? a.frames : defaults.frames;
  const auto [width, height] = a.size.empty()
                                   ? std::array<std::int64_t, 2>{defaults.width, defaults.height}
                                   : parse_size(a.size);
  const DType dtype = default_dtypes(spec, be.device()).vae;
  PrefetchedRandomWeights weights(wan_vae_decoder_parameters(spec.wan_vae, WanVaeLayout::diffusers),
                                  a.seed);
  WanVAE vae(spec.wan_vae, weights, be, dtype);
  out["dtype"] = dtype_name(dtype);
  out["rows"].push_back(time_vae_decode(a, be, vae, width, height, frames));
}

}  // namespace ditserve::cli
