#include "pipeline/pipeline.h"

#include <cmath>
#include <utility>

#include "kernels/copy.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

Tensor upload(Backend& be, const Tensor& host) {
  const std::unique_ptr<Backend> host_be = make_backend(host.device());
  return transfer(*host_be, host, be);
}

Tensor i32_host(const std::vector<std::int32_t>& values, const Shape& shape) {
  Tensor t = Tensor::empty_host(shape, DType::i32);
  std::copy(values.begin(), values.end(), t.data<std::int32_t>());
  return t;
}

}  // namespace

Tokenizer load_tokenizer(const ModelSpec& spec,
                         const std::optional<std::filesystem::path>& weights_dir) {
  require_weights(spec, weights_dir);
  const std::int64_t max_tokens = spec.max_prompt_tokens();
  if (weights_dir) {
    const std::filesystem::path path = *weights_dir / kTokenizerPath;
    if (std::filesystem::exists(path)) return Tokenizer::from_file(path, max_tokens);
  }
  if (spec.builtin_seed) return Tokenizer::from_bytes(tiny_tokenizer_model(), max_tokens);
  throw InvalidArgument("weights: model " + spec.name + " needs its tokenizer at '" +
                        (*weights_dir / kTokenizerPath).string() + "' (T5's spiece.model)");
}

void validate_request(const ModelSpec& spec, const GenerateRequest& r) {
  // latent_frames names "frames" and the rule when the VAE cannot produce the count.
  DITSERVE_CHECK(r.frames >= 1, "frames: must be >= 1, got ", r.frames);
  opensora_vae_latent_frames(spec.vae, r.frames);
  const std::int64_t m = spec.size_multiple();
  DITSERVE_CHECK(r.width > 0 && r.height > 0 && r.width % m == 0 && r.height % m == 0,
                 "size: width and height must be positive multiples of ", m, " for model ",
                 spec.name, ", got ", r.width, "x", r.height);
  DITSERVE_CHECK(r.steps >= 1, "steps: must be >= 1, got ", r.steps);
  DITSERVE_CHECK(std::isfinite(r.guidance), "guidance: must be a finite number, got ", r.guidance);
  DITSERVE_CHECK(std::isfinite(r.fps) && r.fps > 0, "fps: must be > 0, got ", r.fps);
}

Pipeline::Pipeline(ModelSpec spec, Backend& be,
                   const std::optional<std::filesystem::path>& weights_dir)
    : spec_(std::move(spec)),
      be_(be),
      tokenizer_(load_tokenizer(spec_, weights_dir)),
      model_(load_model(spec_, be, weights_dir)) {
  DITSERVE_CHECK(tokenizer_.vocab_size() <= spec_.text_encoder.vocab, "weights: the tokenizer has ",
                 tokenizer_.vocab_size(), " pieces, more than the text encoder's vocabulary of ",
                 spec_.text_encoder.vocab);
}

Captions Pipeline::encode(std::string_view prompt) {
  const std::vector<std::int32_t> ids = tokenizer_.encode(prompt);
  const auto length = static_cast<std::int64_t>(ids.size());
  const Tensor ids_dev = upload(be_, i32_host(ids, {1, length}));
  const Tensor lengths_1 = upload(be_, i32_host({static_cast<std::int32_t>(length)}, {1}));
  Tensor cond = model_.text_encoder->encode(ids_dev, lengths_1);
  if (cond.dtype() != model_.caption_dtype) cond = cast(be_, cond, model_.caption_dtype);
  const Tensor null = model_.null_caption.narrow(1, 0, length);
  const auto l32 = static_cast<std::int32_t>(length);
  return {concat(be_, {cond, null}, 0), upload(be_, i32_host({l32, l32}, {2}))};
}

GenerationState Pipeline::start(const GenerateRequest& r, Captions captions) {
  const std::int64_t f = model_.vae->spatial_factor();
  const Shape shape{1, model_.transformer->latent_channels(), model_.vae->latent_frames(r.frames),
                    r.height / f, r.width / f};
  SamplerOptions options;
  options.steps = r.steps;
  options.guidance = r.guidance;
  options.fps = r.fps;
  options.height = r.height;
  options.width = r.width;
  options.frames = r.frames;
  return GenerationState(upload(be_, gaussian_noise(shape, r.seed)),
                         std::move(captions.embeddings), std::move(captions.lengths), options);
}

Tensor Pipeline::decode(const GenerationState& state) {
  DITSERVE_CHECK(state.done(), "decode: the state has finished ", state.step_index(), " of ",
                 state.num_steps(), " steps");
  const Tensor video = model_.vae->decode(state.latents(), state.options().frames);
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const Tensor on_host = transfer(be_, video, *host);
  return on_host.dtype() == DType::f32 ? on_host : cast(*host, on_host, DType::f32);
}

}  // namespace ditserve
