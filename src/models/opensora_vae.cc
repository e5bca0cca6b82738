#include "models/opensora_vae.h"

#include <algorithm>

#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Latent frames of one temporal chunk of n video frames (VAE_Temporal.get_latent_size).
std::int64_t chunk_latent_frames(const OpenSoraVAEConfig& cfg, std::int64_t n) {
  return ceil_div(n, cfg.temporal.time_factor());
}

const OpenSoraVAEConfig& validated(const OpenSoraVAEConfig& cfg) {
  cfg.validate();
  return cfg;
}

// `values` as a [size] tensor of `dtype` on be's device.
Tensor device_constant(Backend& be, const std::vector<float>& values, DType dtype) {
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const Tensor t = Tensor::from_vector(values, {static_cast<std::int64_t>(values.size())});
  return transfer(*host, dtype == DType::f32 ? t : cast(*host, t, dtype), be);
}

}  // namespace

void OpenSoraVAEConfig::validate() const {
  spatial.validate();
  temporal.validate();
  DITSERVE_CHECK(spatial.latent_channels == temporal.channels,
                 "OpenSora VAE: spatial latent_channels (", spatial.latent_channels,
                 ") must equal the temporal channels (", temporal.channels, ")");
  DITSERVE_CHECK(micro_frame_size > 0, "OpenSora VAE: micro_frame_size must be > 0, got ",
                 micro_frame_size);
  DITSERVE_CHECK(spatial_micro_batch > 0,
                 "OpenSora VAE: spatial_micro_batch must be > 0, got ", spatial_micro_batch);
  DITSERVE_CHECK(spatial_scaling > 0.0f, "OpenSora VAE: spatial_scaling must be > 0, got ",
                 spatial_scaling);
}

OpenSoraVAEConfig opensora_vae_v1_2() { return OpenSoraVAEConfig{}; }

OpenSoraVAEConfig opensora_vae_tiny() {
  OpenSoraVAEConfig cfg;
  cfg.spatial.block_out_channels = {16, 32, 32, 32};
  cfg.spatial.layers_per_block = 2;
  cfg.spatial.norm_groups = 8;
  cfg.temporal.filters = 16;
  cfg.temporal.num_res_blocks = 2;
  cfg.temporal.norm_groups = 8;
  return cfg;
}

std::vector<ParamSpec> opensora_vae_decoder_parameters(const OpenSoraVAEConfig& cfg) {
  cfg.validate();
  std::vector<ParamSpec> specs = SdVaeDecoder::parameters(cfg.spatial, "spatial_vae.module.");
  const std::vector<ParamSpec> temporal =
      TemporalVaeDecoder::parameters(cfg.temporal, "temporal_vae.");
  specs.insert(specs.end(), temporal.begin(), temporal.end());
  const std::int64_t c = cfg.temporal.channels;
  specs.push_back({"scale", {1, c, 1, 1, 1}, ParamInit::ones});
  specs.push_back({"shift", {1, c, 1, 1, 1}, ParamInit::zeros});
  return specs;
}

std::int64_t opensora_vae_latent_frames(const OpenSoraVAEConfig& cfg, std::int64_t frames) {
  DITSERVE_CHECK(frames >= 1, "frames: the OpenSora VAE decodes any count >= 1 (chunks of ",
                 cfg.micro_frame_size, " frames -> ", chunk_latent_frames(cfg, cfg.micro_frame_size),
                 " latent frames, plus a shorter tail), got ", frames);
  const std::int64_t full = frames / cfg.micro_frame_size;
  const std::int64_t tail = frames % cfg.micro_frame_size;
  return full * chunk_latent_frames(cfg, cfg.micro_frame_size) +
         (tail > 0 ? chunk_latent_frames(cfg, tail) : 0);
}

OpenSoraVAE::OpenSoraVAE(const OpenSoraVAEConfig& cfg, const WeightSource& weights,
                         Backend& be, DType dtype)
    : cfg_(validated(cfg)),
      be_(be),
      dtype_(dtype),
      scale_(WeightLoader(weights, be, dtype)
                 .load_f32("scale", {1, cfg.temporal.channels, 1, 1, 1})
                 .view({cfg.temporal.channels})),
      shift_(WeightLoader(weights, be, dtype)
                 .load_f32("shift", {1, cfg.temporal.channels, 1, 1, 1})
                 .view({cfg.temporal.channels})),
      inv_scaling_(device_constant(be, {1.0f / cfg.spatial_scaling}, dtype)),
      temporal_(cfg.temporal, WeightLoader(weights, be, dtype, "temporal_vae.")),
      spatial_(cfg.spatial, WeightLoader(weights, be, dtype, "spatial_vae.module.")) {}

std::int64_t OpenSoraVAE::latent_frames(std::int64_t frames) const {
  return opensora_vae_latent_frames(cfg_, frames);
}

Tensor OpenSoraVAE::decode_temporal(const Tensor& z, std::int64_t frames) const {
  SpatialShardContext ctx(be_);
  return decode_temporal(ctx, Bands{z}, frames).front();
}

Bands OpenSoraVAE::decode_temporal(SpatialShardContext& ctx, const Bands& z,
                                   std::int64_t frames) const {
  const std::int64_t expected = latent_frames(frames);
  const Tensor& z0 = z.at(0);
  DITSERVE_CHECK(z0.dim() == 5 && z0.size(1) == expected && z0.size(4) == cfg_.temporal.channels,
                 "OpenSora VAE: latents are ", z0.describe(), "; ", frames, " frames need [B, ",
                 expected, ", h, w, ", cfg_.temporal.channels, "] (channels-last)");
  const std::int64_t factor = cfg_.temporal.time_factor();
  const std::int64_t chunk = chunk_latent_frames(cfg_, cfg_.micro_frame_size);
  std::vector<Bands> parts;
  std::int64_t remaining = frames;
  for (std::int64_t start = 0; start < expected; start += chunk) {
    const std::int64_t n = std::min(chunk, expected - start);
    const std::int64_t chunk_frames = std::min(cfg_.micro_frame_size, remaining);
    const Bands decoded = temporal_.forward(ctx, ctx.map(z, [&](Backend& be, int, const Tensor& t) {
      return contiguous(be, t.narrow(1, start, n));
    }));
    const std::int64_t front_pad = (factor - chunk_frames % factor) % factor;
    parts.push_back(ctx.map(decoded, [&](Backend&, int, const Tensor& t) {
      return t.narrow(1, front_pad, t.size(1) - front_pad);
    }));
    remaining -= cfg_.micro_frame_size;
  }
  return ctx.map(parts.front(), [&](Backend& be, int m, const Tensor& first) {
    if (parts.size() == 1) return contiguous(be, first);
    std::vector<Tensor> mine;
    for (const Bands& p : parts) mine.push_back(p[static_cast<std::size_t>(m)]);
    return concat(be, mine, 1);
  });
}

Tensor OpenSoraVAE::decode_spatial(const Tensor& x) const {
  SpatialShardContext ctx(be_);
  return decode_spatial(ctx, Bands{x}).front();
}

Bands OpenSoraVAE::decode_spatial(SpatialShardContext& ctx, const Bands& x) const {
  return spatial_.forward(ctx, ctx.map(x, [&](Backend& be, int m, const Tensor& t) {
    return mul(be, t, ctx.param(inv_scaling_, m));
  }));
}

Tensor OpenSoraVAE::decode(const Tensor& latents, std::int64_t frames) {
  SpatialShardContext ctx(be_);
  return decode_patch_parallel(ctx, latents, frames);
}

Tensor OpenSoraVAE::decode_patch_parallel(SpatialShardContext& ctx, const Tensor& latents,
                                          std::int64_t frames) {
  const std::int64_t c = cfg_.temporal.channels;
  DITSERVE_CHECK(latents.defined() && latents.dim() == 5 && latents.size(1) == c &&
                     latents.dtype() == DType::f32,
                 "latents: expected f32 [B, ", c, ", T', h, w], got ",
                 latents.defined() ? latents.describe() : std::string("no tensor"));
  DITSERVE_CHECK(latents.device() == be_.device(), "latents: ", latents.describe(),
                 " is not on the VAE's device ", be_.device().str());
  const std::int64_t expected = latent_frames(frames);
  DITSERVE_CHECK(latents.size(2) == expected, "latents: ", frames, " frames need ", expected,
                 " latent frames, got ", latents.describe());
  const std::int64_t b = latents.size(0), h = latents.size(3), w = latents.size(4);

  Tensor z = contiguous(be_, latents.permute({0, 2, 3, 4, 1}));  // [B, T', h, w, C]
  z = add(be_, mul(be_, z, scale_), shift_);
  if (dtype_ != DType::f32) z = cast(be_, z, dtype_);
  const Bands x = decode_temporal(ctx, ctx.split(z, 2), frames);  // [B, frames, h_i, w, C]

  const std::int64_t f = spatial_factor();
  Tensor out =
      ctx.backend(0).empty({b, cfg_.spatial.out_channels, frames, h * f, w * f}, DType::f32);
  for (std::int64_t i = 0; i < b; ++i) {
    const Tensor video = out.select(0, i).permute({1, 2, 3, 0});  // [frames, H, W, 3]
    for (std::int64_t t = 0; t < frames; t += cfg_.spatial_micro_batch) {
      const std::int64_t n = std::min(cfg_.spatial_micro_batch, frames - t);
      Bands images = decode_spatial(ctx, ctx.map(x, [&](Backend&, int, const Tensor& band) {
        return band.select(0, i).narrow(0, t, n);
      }));
      if (dtype_ != DType::f32) {
        images = ctx.map(images, [](Backend& be, int, const Tensor& band) {
          return cast(be, band, DType::f32);
        });
      }
      ctx.gather_into(images, 1, video.narrow(0, t, n));
    }
  }
  return out;
}


std::vector<Tensor> OpenSoraVAE::loaded_parameters() const {
  std::vector<Tensor> out{scale_, shift_, inv_scaling_};
  temporal_.append_tensors(out);
  spatial_.append_tensors(out);
  return out;
}

}  // namespace ditserve
