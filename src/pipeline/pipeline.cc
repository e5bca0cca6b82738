#include "pipeline/pipeline.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "kernels/copy.h"
#include "kernels/resample.h"
#include "models/interfaces.h"
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

// `text` as ids; the tokenizer's "prompt: ..." errors renamed to "negative_prompt: ...".
std::vector<std::int32_t> negative_ids(const Tokenizer& tokenizer, std::string_view text) {
  try {
    return tokenizer.encode(text);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument("negative_" + std::string(e.what()));
  }
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
                        (*weights_dir / kTokenizerPath).string() + "' (" +
                        (spec.is_wan() ? "google/umt5-xxl's" : "T5's") + " spiece.model)");
}

GenerateRequest default_request(const ModelSpec& spec) {
  GenerateRequest r;
  if (!spec.is_wan()) return r;
  const WanSampling& w = spec.wan_sampling;
  r.frames = w.frames;
  r.width = w.width;
  r.height = w.height;
  r.steps = w.steps;
  r.guidance = w.guidance;
  r.fps = w.fps;
  r.sampler = SamplerKind::unipc;
  r.shift = w.shift;
  return r;
}

void validate_request(const ModelSpec& spec, const GenerateRequest& r) {
  // latent_frames names "frames" and the rule when the VAE cannot produce the count.
  DITSERVE_CHECK(r.frames >= 1, "frames: must be >= 1, got ", r.frames);
  spec.latent_frames(r.frames);
  const std::int64_t m = spec.size_multiple();
  DITSERVE_CHECK(r.width > 0 && r.height > 0 && r.width % m == 0 && r.height % m == 0,
                 "size: width and height must be positive multiples of ", m, " for model ",
                 spec.name, ", got ", r.width, "x", r.height);
  DITSERVE_CHECK(r.steps >= 1, "steps: must be >= 1, got ", r.steps);
  DITSERVE_CHECK(std::isfinite(r.guidance), "guidance: must be a finite number, got ", r.guidance);
  DITSERVE_CHECK(std::isfinite(r.fps) && r.fps > 0, "fps: must be > 0, got ", r.fps);
  if (r.sampler) {
    const bool flow = *r.sampler != SamplerKind::rectified_flow;
    DITSERVE_CHECK(flow == spec.is_wan(), "sampler: model ", spec.name, " takes ",
                   spec.is_wan() ? "unipc or euler" : "rflow", ", got ", sampler_name(*r.sampler));
  }
  if (r.shift) {
    DITSERVE_CHECK(spec.is_wan(), "shift: only Wan models take a flow shift (model ", spec.name,
                   ")");
    DITSERVE_CHECK(std::isfinite(*r.shift) && *r.shift > 0, "shift: must be > 0, got ", *r.shift);
  }
}

Pipeline::Pipeline(ModelSpec spec, Backend& be,
                   const std::optional<std::filesystem::path>& weights_dir, PipelineOptions options)
    : spec_(std::move(spec)),
      be_(be),
      tokenizer_(load_tokenizer(spec_, weights_dir)),
      model_(load_model(spec_, be, weights_dir)) {
  DITSERVE_CHECK(tokenizer_.vocab_size() <= spec_.text_encoder.vocab, "weights: the tokenizer has ",
                 tokenizer_.vocab_size(), " pieces, more than the text encoder's vocabulary of ",
                 spec_.text_encoder.vocab);
  if (spec_.is_wan())
    default_negative_ids_ = negative_ids(tokenizer_, spec_.wan_sampling.negative_prompt);
  if (options.cuda_graphs) {
    GraphedTransformerOptions graphs;
    // A request must not fail because its shape could not be captured: it runs eagerly.
    graphs.on_capture_failure = GraphedTransformerOptions::OnCaptureFailure::run_eagerly;
    graphed_ = std::make_unique<GraphedTransformer>(*model_.transformer, be_, graphs);
  }
}

Pipeline::~Pipeline() = default;

Tensor Pipeline::embed(const std::vector<std::int32_t>& ids) {
  const auto length = static_cast<std::int64_t>(ids.size());
  const Tensor ids_dev = upload(be_, i32_host(ids, {1, length}));
  const Tensor lengths_1 = upload(be_, i32_host({static_cast<std::int32_t>(length)}, {1}));
  Tensor out = model_.text_encoder->encode(ids_dev, lengths_1);
  return out.dtype() == model_.caption_dtype ? out : cast(be_, out, model_.caption_dtype);
}

Captions Pipeline::encode(std::string_view prompt) { return encode(prompt, ""); }

Captions Pipeline::encode(std::string_view prompt, std::string_view negative_prompt) {
  const std::vector<std::int32_t> ids = tokenizer_.encode(prompt);
  const auto length = static_cast<std::int64_t>(ids.size());
  Tensor cond = embed(ids);
  if (spec_.is_wan()) {
    Tensor negative;
    if (negative_prompt.empty()) {
      if (!default_negative_.defined()) default_negative_ = embed(default_negative_ids_);
      negative = default_negative_;
    } else {
      negative = embed(negative_ids(tokenizer_, negative_prompt));
    }
    // One [2, L, C] batch: each row zero past its own length.
    const std::int64_t l = std::max(cond.size(1), negative.size(1));
    const auto padded = [&](const Tensor& t) {
      return t.size(1) == l ? t : pad(be_, t, {{0, 0}, {0, l - t.size(1)}, {0, 0}});
    };
    const auto l_cond = static_cast<std::int32_t>(cond.size(1));
    const auto l_neg = static_cast<std::int32_t>(negative.size(1));
    const Tensor lengths = i32_host({l_cond, l_neg}, {2});
    // Checked here, on the host: the DiT does not read a GPU copy back to check it.
    check_caption_lengths("encode", lengths, l);
    return {concat(be_, {padded(cond), padded(negative)}, 0), upload(be_, lengths)};
  }
  const Tensor null = model_.null_caption.narrow(1, 0, length);
  const auto l32 = static_cast<std::int32_t>(length);
  const Tensor lengths = i32_host({l32, l32}, {2});
  check_caption_lengths("encode", lengths, length);  // on the host, as above
  return {concat(be_, {cond, null}, 0), upload(be_, lengths)};
}

GenerationState Pipeline::start(const GenerateRequest& r, Captions captions) {
  const std::int64_t f = model_.vae->spatial_factor();
  const Shape shape{1, model_.transformer->latent_channels(), model_.vae->latent_frames(r.frames),
                    r.height / f, r.width / f};
  const GenerateRequest defaults = default_request(spec_);
  SamplerOptions options;
  options.sampler = r.sampler.value_or(defaults.sampler.value_or(SamplerKind::rectified_flow));
  options.shift = r.shift.value_or(defaults.shift.value_or(options.shift));
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
