#include "models/registry.h"

#include <algorithm>

#include "kernels/copy.h"
#include "models/prefetched_weights.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

constexpr std::uint64_t kTinySeed = 0;

ModelSpec opensora(std::string name, T5Config text, STDiT3Config dit, OpenSoraVAEConfig vae,
                   std::optional<std::uint64_t> builtin_seed) {
  ModelSpec spec;
  spec.name = std::move(name);
  spec.text_encoder = text;
  spec.transformer = dit;
  spec.vae = vae;
  spec.builtin_seed = builtin_seed;
  return spec;
}

ModelSpec opensora_v1_2() {
  return opensora("opensora-v1.2", t5_v1_1_xxl(), stdit3_xl_2(), opensora_vae_v1_2(), std::nullopt);
}

ModelSpec tiny() {
  ModelSpec spec = opensora("tiny", t5_tiny(), stdit3_tiny(), opensora_vae_tiny(), kTinySeed);
  // The DiT takes the encoder's output as captions, and its null caption has one row per
  // token the encoder accepts.
  spec.transformer.caption_channels = spec.text_encoder.d_model;
  spec.transformer.model_max_length = spec.text_encoder.max_tokens;
  return spec;
}

// wan/configs/shared_config.py: sample_neg_prompt.
constexpr const char* kWanNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，"
    "低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容"
    "的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

ModelSpec wan(std::string name, T5Config text, WanConfig dit, WanVAEConfig vae) {
  ModelSpec spec;
  spec.name = std::move(name);
  spec.text_encoder = text;
  spec.family = ModelFamily::wan;
  spec.wan_transformer = dit;
  spec.wan_vae = vae;
  spec.wan_sampling.negative_prompt = kWanNegativePrompt;
  return spec;
}

// Sampling defaults: generate.py's for t2v (50 steps, sample_shift 5.0, guide scale 5.0,
// 81 frames, sample_fps 16), except that for 1.3B Wan's README recommends guide scale 6
// and a shift of 8 to 12 (its example command: --sample_shift 8 --sample_guide_scale 6).
// Sizes: the first of SUPPORTED_SIZES' 480p / 720p entries.
ModelSpec wan_1_3b() {
  ModelSpec spec = wan("wan2.1-t2v-1.3b", umt5_xxl(), wan_t2v_1_3b(), wan_vae_2_1());
  spec.wan_sampling.guidance = 6.0f;
  spec.wan_sampling.shift = 8.0;
  return spec;
}

ModelSpec wan_14b() {
  ModelSpec spec = wan("wan2.1-t2v-14b", umt5_xxl(), wan_t2v_14b(), wan_vae_2_1());
  spec.wan_sampling.width = 1280;
  spec.wan_sampling.height = 720;
  return spec;
}

ModelSpec tiny_wan() {
  ModelSpec spec = wan("tiny-wan", umt5_tiny(), wan_tiny(), wan_vae_tiny());
  spec.builtin_seed = kTinySeed;
  spec.wan_transformer.text_dim = spec.text_encoder.d_model;
  spec.wan_transformer.text_len = spec.text_encoder.max_tokens;
  // Small enough to run in CI by default.
  spec.wan_sampling.frames = 5;
  spec.wan_sampling.width = 64;
  spec.wan_sampling.height = 64;
  return spec;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::unique_ptr<WeightSource> component_source(const ComponentWeights& component,
                                               const std::optional<std::filesystem::path>& dir,
                                               std::uint64_t seed) {
  if (!dir) return std::make_unique<PrefetchedRandomWeights>(component.params, seed);
  const std::filesystem::path path = *dir / component.dir;
  if (!std::filesystem::exists(path))
    throw InvalidArgument("weights: '" + path.string() + "' does not exist (expected the " +
                          component.dir + " checkpoint there)");
  return open_weight_file(path);
}

LoadedModel load_wan(const ModelSpec& spec, Backend& be,
                     const std::optional<std::filesystem::path>& weights_dir) {
  DITSERVE_CHECK(spec.wan_transformer.text_dim == spec.text_encoder.d_model, "model ", spec.name,
                 ": the DiT's text_dim (", spec.wan_transformer.text_dim,
                 ") differs from the text encoder's d_model (", spec.text_encoder.d_model, ")");
  DITSERVE_CHECK(spec.wan_transformer.in_channels == spec.wan_vae.z_dim, "model ", spec.name,
                 ": the DiT's in_channels (", spec.wan_transformer.in_channels,
                 ") differ from the VAE's z_dim (", spec.wan_vae.z_dim, ")");
  const std::uint64_t seed = spec.builtin_seed.value_or(0);
  const ModelDTypes dtypes = default_dtypes(spec, be.device());
  LoadedModel model;
  for (const ComponentWeights& c : model_components(spec))
    model.sources.push_back(component_source(c, weights_dir, seed));
  model.text_encoder = std::make_unique<T5Encoder>(
      spec.text_encoder, WeightLoader(*model.sources[0], be, dtypes.text_encoder));
  auto dit = std::make_unique<WanTransformer>(
      spec.wan_transformer, WeightLoader(*model.sources[1], be, dtypes.transformer));
  model.caption_dtype = dit->dtype();
  model.transformer = std::move(dit);
  model.vae = std::make_unique<WanVAE>(spec.wan_vae, *model.sources[2], be, dtypes.vae);
  return model;
}

}  // namespace

std::int64_t ModelSpec::size_multiple() const {
  if (is_wan()) {
    const auto& p = wan_transformer.patch_size;
    return wan_vae.spatial_factor() * std::max(p[1], p[2]);
  }
  const std::int64_t patch = std::max(transformer.patch_size[1], transformer.patch_size[2]);
  return vae.spatial.spatial_factor() * patch;
}

std::int64_t ModelSpec::max_prompt_tokens() const {
  if (is_wan()) return std::min(text_encoder.max_tokens, wan_transformer.text_len);
  return std::min(text_encoder.max_tokens, transformer.model_max_length);
}

std::int64_t ModelSpec::latent_frames(std::int64_t frames) const {
  if (is_wan()) return wan_vae_latent_frames(wan_vae, frames);
  return opensora_vae_latent_frames(vae, frames);
}

std::int64_t ModelSpec::latent_channels() const {
  return is_wan() ? wan_vae.z_dim : vae.temporal.channels;
}

std::vector<std::string> model_names() {
  return {"opensora-v1.2", "tiny", "wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "tiny-wan"};
}

ModelSpec find_model(std::string_view name) {
  if (name == "opensora-v1.2") return opensora_v1_2();
  if (name == "tiny") return tiny();
  if (name == "wan2.1-t2v-1.3b") return wan_1_3b();
  if (name == "wan2.1-t2v-14b") return wan_14b();
  if (name == "tiny-wan") return tiny_wan();
  throw InvalidArgument("model: unknown model '" + std::string(name) + "'; known: " +
                        join(model_names()));
}

WeightLayout parse_weight_layout(std::string_view name) {
  if (name == "original") return WeightLayout::original;
  if (name == "diffusers") return WeightLayout::diffusers;
  throw InvalidArgument("layout: unknown checkpoint layout '" + std::string(name) +
                        "'; known: original, diffusers");
}

std::vector<ComponentWeights> model_components(const ModelSpec& spec, WeightLayout layout) {
  if (spec.is_wan()) {
    const bool original = layout == WeightLayout::original;
    return {{"text_encoder",
             t5_parameters(spec.text_encoder, original ? T5Layout::wan : T5Layout::transformers)},
            {"transformer", wan_parameters(spec.wan_transformer,
                                           original ? WanLayout::original : WanLayout::diffusers)},
            {"vae", wan_vae_decoder_parameters(spec.wan_vae, original ? WanVaeLayout::original
                                                                       : WanVaeLayout::diffusers)}};
  }
  DITSERVE_CHECK(layout == WeightLayout::original, "layout: model ", spec.name,
                 " has one public naming (original); diffusers is for Wan models");
  return {{"text_encoder", t5_parameters(spec.text_encoder)},
          {"transformer", stdit3_parameters(spec.transformer)},
          {"vae", opensora_vae_decoder_parameters(spec.vae)}};
}

ModelDTypes default_dtypes(Device device) {
  if (device.is_cpu()) return {};
  return {DType::f32, DType::bf16, DType::bf16};
}

ModelDTypes default_dtypes(const ModelSpec& spec, Device device) {
  if (!spec.is_wan()) return default_dtypes(device);
  if (device.is_cpu()) return {};
  return {DType::bf16, DType::bf16, DType::f32};
}

void require_weights(const ModelSpec& spec, const std::optional<std::filesystem::path>& weights_dir) {
  if (!weights_dir && !spec.builtin_seed)
    throw InvalidArgument("weights: model " + spec.name +
                          " has no built-in weights; pass --weights DIR (`ditserve make-weights " +
                          spec.name + " DIR` writes random ones)");
}

LoadedModel load_model(const ModelSpec& spec, Backend& be,
                       const std::optional<std::filesystem::path>& weights_dir) {
  require_weights(spec, weights_dir);
  if (spec.is_wan()) return load_wan(spec, be, weights_dir);
  DITSERVE_CHECK(spec.transformer.caption_channels == spec.text_encoder.d_model, "model ",
                 spec.name, ": the DiT's caption_channels (", spec.transformer.caption_channels,
                 ") differ from the text encoder's d_model (", spec.text_encoder.d_model, ")");
  DITSERVE_CHECK(spec.transformer.in_channels == spec.vae.temporal.channels, "model ", spec.name,
                 ": the DiT's in_channels (", spec.transformer.in_channels,
                 ") differ from the VAE's latent channels (", spec.vae.temporal.channels, ")");
  const std::uint64_t seed = spec.builtin_seed.value_or(0);
  const std::vector<ComponentWeights> components = model_components(spec);
  const ModelDTypes dtypes = default_dtypes(be.device());

  LoadedModel model;
  for (const ComponentWeights& c : components)
    model.sources.push_back(component_source(c, weights_dir, seed));
  model.text_encoder = std::make_unique<T5Encoder>(
      spec.text_encoder, WeightLoader(*model.sources[0], be, dtypes.text_encoder));
  auto dit = std::make_unique<STDiT3>(spec.transformer,
                                      WeightLoader(*model.sources[1], be, dtypes.transformer));
  model.null_caption = dit->null_captions(spec.max_prompt_tokens());
  model.caption_dtype = dit->dtype();
  model.transformer = std::move(dit);
  model.vae = std::make_unique<OpenSoraVAE>(spec.vae, *model.sources[2], be, dtypes.vae);
  return model;
}

}  // namespace ditserve
