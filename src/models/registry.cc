#include "models/registry.h"

#include <algorithm>

#include "kernels/copy.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

constexpr std::uint64_t kTinySeed = 0;

ModelSpec opensora_v1_2() {
  return ModelSpec{"opensora-v1.2", t5_v1_1_xxl(), stdit3_xl_2(), opensora_vae_v1_2(), std::nullopt};
}

ModelSpec tiny() {
  ModelSpec spec{"tiny", t5_tiny(), stdit3_tiny(), opensora_vae_tiny(), kTinySeed};
  // The DiT takes the encoder's output as captions, and its null caption has one row per
  // token the encoder accepts.
  spec.transformer.caption_channels = spec.text_encoder.d_model;
  spec.transformer.model_max_length = spec.text_encoder.max_tokens;
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
  if (!dir) return random_weights(component.params, seed);
  const std::filesystem::path path = *dir / component.dir;
  if (!std::filesystem::exists(path))
    throw InvalidArgument("weights: '" + path.string() + "' does not exist (expected the " +
                          component.dir + " checkpoint there)");
  return open_weight_file(path);
}

}  // namespace

std::int64_t ModelSpec::size_multiple() const {
  const std::int64_t patch = std::max(transformer.patch_size[1], transformer.patch_size[2]);
  return vae.spatial.spatial_factor() * patch;
}

std::int64_t ModelSpec::max_prompt_tokens() const {
  return std::min(text_encoder.max_tokens, transformer.model_max_length);
}

std::vector<std::string> model_names() { return {"opensora-v1.2", "tiny"}; }

ModelSpec find_model(std::string_view name) {
  if (name == "opensora-v1.2") return opensora_v1_2();
  if (name == "tiny") return tiny();
  throw InvalidArgument("model: unknown model '" + std::string(name) + "'; known: " +
                        join(model_names()));
}

std::vector<ComponentWeights> model_components(const ModelSpec& spec) {
  return {{"text_encoder", t5_parameters(spec.text_encoder)},
          {"transformer", stdit3_parameters(spec.transformer)},
          {"vae", opensora_vae_decoder_parameters(spec.vae)}};
}

ModelDTypes default_dtypes(Device device) {
  if (device.is_cpu()) return {};
  return {DType::f32, DType::bf16, DType::bf16};
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
