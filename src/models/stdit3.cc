#include "models/stdit3.h"

#include <algorithm>

#include <cmath>
#include <string>

#include "kernels/activation.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/timing.h"
#include "models/stdit3_block.h"
#include "models/stdit3_tables.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

constexpr float kNormEps = 1e-6f;

void append_linear(std::vector<ParamSpec>& specs, const std::string& name, std::int64_t out,
                   std::int64_t in) {
  specs.push_back({name + ".weight", {out, in}, ParamInit::normal, 0.02f});
  specs.push_back({name + ".bias", {out}, ParamInit::zeros, 0.0f});
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

struct Linear {
  Tensor w, b;
  Tensor operator()(Backend& be, const Tensor& x, Activation act = Activation::none) const {
    return linear(be, x, w, b, act);
  }
};

Linear load_linear(const WeightLoader& loader, const std::string& name, std::int64_t out,
                   std::int64_t in) {
  return {loader.load(name + ".weight", {out, in}), loader.load(name + ".bias", {out})};
}

// A [1] zero in `dtype` on be's device (to zero-fill padding through copy_into).
Tensor zero_scalar(Backend& host, Backend& be, DType dtype) {
  const Tensor zero = transfer(host, Tensor::from_vector({0.0f}, {1}), be);
  return dtype == DType::f32 ? zero : cast(be, zero, dtype);
}

}  // namespace

void STDiT3Config::validate() const {
  DITSERVE_CHECK(hidden_size > 0 && num_heads > 0 && hidden_size % num_heads == 0,
                 "STDiT3Config: hidden_size ", hidden_size, " must be a positive multiple of "
                 "num_heads ", num_heads);
  DITSERVE_CHECK(head_dim() % 2 == 0, "STDiT3Config: head_dim ", head_dim(),
                 " must be even (RoPE rotates pairs)");
  DITSERVE_CHECK(hidden_size % 4 == 0, "STDiT3Config: hidden_size ", hidden_size,
                 " must be a multiple of 4 (2D sin-cos position table)");
  DITSERVE_CHECK(depth >= 1, "STDiT3Config: depth must be >= 1, got ", depth);
  for (int i = 0; i < 3; ++i) {
    DITSERVE_CHECK(patch_size[i] >= 1, "STDiT3Config: patch_size[", i, "] must be >= 1, got ",
                   patch_size[i]);
  }
  DITSERVE_CHECK(in_channels >= 1, "STDiT3Config: in_channels must be >= 1, got ", in_channels);
  DITSERVE_CHECK(mlp_hidden() >= 1, "STDiT3Config: mlp_ratio ", mlp_ratio, " is too small");
  DITSERVE_CHECK(caption_channels >= 1 && model_max_length >= 1,
                 "STDiT3Config: caption_channels and model_max_length must be >= 1");
  DITSERVE_CHECK(input_sq_size >= 1, "STDiT3Config: input_sq_size must be >= 1");
  DITSERVE_CHECK(frequency_embedding_size >= 2 && frequency_embedding_size % 2 == 0,
                 "STDiT3Config: frequency_embedding_size must be even and >= 2");
  DITSERVE_CHECK(rope_theta > 0, "STDiT3Config: rope_theta must be > 0");
}

STDiT3Config stdit3_xl_2() { return STDiT3Config{}; }

STDiT3Config stdit3_tiny() {
  STDiT3Config c;
  c.hidden_size = 64;
  c.depth = 2;
  c.num_heads = 4;
  c.caption_channels = 32;
  return c;
}

std::vector<ParamSpec> stdit3_parameters(const STDiT3Config& config) {
  config.validate();
  const std::int64_t c = config.hidden_size;
  const auto& p = config.patch_size;
  const std::int64_t freq = config.frequency_embedding_size;
  const float table_std = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c)));
  std::vector<ParamSpec> specs;
  specs.push_back(
      {"x_embedder.proj.weight", {c, config.in_channels, p[0], p[1], p[2]}, ParamInit::normal, 0.02f});
  specs.push_back({"x_embedder.proj.bias", {c}, ParamInit::zeros, 0.0f});
  append_linear(specs, "t_embedder.mlp.0", c, freq);
  append_linear(specs, "t_embedder.mlp.2", c, c);
  append_linear(specs, "fps_embedder.mlp.0", c, freq);
  append_linear(specs, "fps_embedder.mlp.2", c, c);
  append_linear(specs, "t_block.1", 6 * c, c);
  // The null caption buffer: torch.randn(token_num, in_channels) / sqrt(in_channels).
  specs.push_back({"y_embedder.y_embedding",
                   {config.model_max_length, config.caption_channels},
                   ParamInit::normal,
                   static_cast<float>(1.0 / std::sqrt(static_cast<double>(config.caption_channels)))});
  append_linear(specs, "y_embedder.y_proj.fc1", c, config.caption_channels);
  append_linear(specs, "y_embedder.y_proj.fc2", c, c);
  // 1/10000^(2i/head_dim), as rotary-embedding-torch initialises it.
  specs.push_back({"rope.freqs", {config.head_dim() / 2}, ParamInit::rope_frequencies, 0.0f});
  for (std::int64_t i = 0; i < config.depth; ++i) {
    STDiT3Block::append_params(specs, config, "spatial_blocks." + std::to_string(i) + ".");
  }
  for (std::int64_t i = 0; i < config.depth; ++i) {
    STDiT3Block::append_params(specs, config, "temporal_blocks." + std::to_string(i) + ".");
  }
  specs.push_back({"final_layer.scale_shift_table", {2, c}, ParamInit::normal, table_std});
  append_linear(specs, "final_layer.linear", p[0] * p[1] * p[2] * config.out_channels(), c);
  return specs;
}

struct STDiT3::Embedders {
  Tensor patch_w;  // [C, pt*ph*pw*in_channels]: the Conv3d weight, channels-last, flattened
  Tensor patch_b;
  Linear t0, t2;      // t_embedder.mlp.{0,2}
  Linear fps0, fps2;  // fps_embedder.mlp.{0,2}
  Linear t_block;
  Tensor y_embedding;  // [model_max_length, caption_channels]
  Linear y_fc1, y_fc2;
  std::vector<float> rope_freqs;  // host copy of rope.freqs
  Tensor final_table;             // [2, C]
  Linear final_linear;
};

STDiT3::STDiT3(STDiT3Config config, const WeightLoader& w)
    : config_(std::move(config)),
      be_(w.backend()),
      dtype_(w.dtype()),
      host_(make_backend(Device::cpu())),
      embed_(std::make_unique<Embedders>()) {
  config_.validate();
  const STDiT3Config& c = config_;
  const std::int64_t hs = c.hidden_size;
  const std::int64_t freq = c.frequency_embedding_size;
  const auto& p = c.patch_size;
  Embedders& e = *embed_;
  const Tensor conv = w.load_conv("x_embedder.proj.weight", {hs, c.in_channels, p[0], p[1], p[2]});
  e.patch_w = contiguous(be_, conv).view({hs, -1});
  e.patch_b = w.load("x_embedder.proj.bias", {hs});
  e.t0 = load_linear(w, "t_embedder.mlp.0", hs, freq);
  e.t2 = load_linear(w, "t_embedder.mlp.2", hs, hs);
  e.fps0 = load_linear(w, "fps_embedder.mlp.0", hs, freq);
  e.fps2 = load_linear(w, "fps_embedder.mlp.2", hs, hs);
  e.t_block = load_linear(w, "t_block.1", 6 * hs, hs);
  e.y_embedding = w.load("y_embedder.y_embedding", {c.model_max_length, c.caption_channels});
  e.y_fc1 = load_linear(w, "y_embedder.y_proj.fc1", hs, c.caption_channels);
  e.y_fc2 = load_linear(w, "y_embedder.y_proj.fc2", hs, hs);
  e.rope_freqs = transfer(be_, w.load_f32("rope.freqs", {c.head_dim() / 2}), *host_).to_vector_f32();
  e.final_table = w.load("final_layer.scale_shift_table", {2, hs});
  e.final_linear = load_linear(w, "final_layer.linear", p[0] * p[1] * p[2] * c.out_channels(), hs);
  zero_ = zero_scalar(*host_, be_, dtype_);
  spatial_.reserve(static_cast<std::size_t>(c.depth));
  temporal_.reserve(static_cast<std::size_t>(c.depth));
  for (std::int64_t i = 0; i < c.depth; ++i) {
    spatial_.emplace_back(c, w.sub("spatial_blocks." + std::to_string(i) + "."), false);
  }
  for (std::int64_t i = 0; i < c.depth; ++i) {
    temporal_.emplace_back(c, w.sub("temporal_blocks." + std::to_string(i) + "."), true);
  }
}

STDiT3::~STDiT3() = default;

STDiT3Step STDiT3::prepare(const DenoiseInputs& in) {
  const STDiT3Config& c = config_;
  const Tensor& x = in.latents;
  DITSERVE_CHECK(x.defined() && x.dim() == 5 && x.dtype() == DType::f32 &&
                     x.size(1) == c.in_channels,
                 "STDiT3: latents must be f32 [B, ", c.in_channels, ", T, H, W], got ",
                 x.defined() ? x.describe() : std::string("undefined"));
  DITSERVE_CHECK(x.device() == be_.device(), "STDiT3: latents live on ", x.device().str(),
                 " but the model on ", be_.device().str());
  const std::int64_t b = x.size(0);
  DITSERVE_CHECK(b >= 1 && x.size(2) >= 1 && x.size(3) >= 1 && x.size(4) >= 1,
                 "STDiT3: latents ", x.describe(), " has an empty dimension");
  const Tensor& ts = in.timesteps;
  DITSERVE_CHECK(ts.defined() && ts.dim() == 1 && ts.size(0) == b && ts.dtype() == DType::f32 &&
                     ts.device() == be_.device(),
                 "STDiT3: timesteps must be f32 [", b, "] on ", be_.device().str(), ", got ",
                 ts.defined() ? ts.describe() : std::string("undefined"));
  const Tensor& y = in.captions;
  DITSERVE_CHECK(y.defined() && y.dim() == 3 && y.size(0) == b && is_floating(y.dtype()) &&
                     y.size(2) == c.caption_channels && y.device() == be_.device(),
                 "STDiT3: captions must be [", b, ", L, ", c.caption_channels, "] on ",
                 be_.device().str(), ", got ", y.defined() ? y.describe() : std::string("undefined"));
  const std::int64_t len = y.size(1);
  DITSERVE_CHECK(len >= 1 && len <= c.model_max_length, "STDiT3: captions has ", len,
                 " tokens; allowed 1..", c.model_max_length);
  const Tensor& lens = in.caption_lengths;
  DITSERVE_CHECK(lens.defined() && lens.dim() == 1 && lens.size(0) == b &&
                     lens.dtype() == DType::i32 && lens.device() == be_.device(),
                 "STDiT3: caption_lengths must be i32 [", b, "] on ", be_.device().str(), ", got ",
                 lens.defined() ? lens.describe() : std::string("undefined"));
  // The values only where they are host memory (DenoiseInputs): no wait for a GPU per step.
  if (lens.device().is_cpu()) check_caption_lengths("STDiT3", lens, len);
  DITSERVE_CHECK(std::isfinite(in.fps) && in.fps > 0, "STDiT3: fps must be > 0, got ", in.fps);
  DITSERVE_CHECK(in.height >= 1 && in.width >= 1, "STDiT3: height and width (pixels) must be "
                 ">= 1, got ", in.height, "x", in.width);

  STDiT3Step step;
  step.batch = b;
  step.latent = {x.size(2), x.size(3), x.size(4)};
  for (int i = 0; i < 3; ++i) step.grid[i] = ceil_div(step.latent[i], c.patch_size[i]);
  const Embedders& e = *embed_;
  const auto to_model = [&](const Tensor& t) { return t.dtype() == dtype_ ? t : cast(be_, t, dtype_); };

  // Open-Sora casts timestep, fps, height and width to the model dtype before using them.
  Tensor t_in = ts;
  if (dtype_ != DType::f32) t_in = cast(be_, cast(be_, ts, dtype_), DType::f32);
  const int freq = static_cast<int>(c.frequency_embedding_size);
  Tensor t = e.t0(be_, to_model(timestep_embedding(be_, t_in, freq, /*cos_first=*/true)),
                  Activation::silu);
  t = e.t2(be_, t);
  // Uploaded once per (batch, fps), not per step: a step must not transfer from the host
  // (it waits for the device, and a graph capture cannot hold it).
  const Tensor fps = fps_.get(be_, {b, in.fps}, [&] {
    const Tensor fps_host = Tensor::from_vector(
        std::vector<float>(static_cast<std::size_t>(b), round_to_dtype(in.fps, dtype_)), {b});
    return transfer(*host_, fps_host, be_);
  });
  Tensor f = e.fps0(be_, to_model(timestep_embedding(be_, fps, freq, /*cos_first=*/true)),
                    Activation::silu);
  step.t = add(be_, t, e.fps2(be_, f));
  step.t_mlp = e.t_block(be_, silu(be_, step.t));

  step.captions = e.y_fc2(be_, e.y_fc1(be_, contiguous(be_, to_model(y)), Activation::gelu_tanh));
  step.caption_lengths = contiguous(be_, lens);

  const double height = round_to_dtype(static_cast<float>(in.height), dtype_);
  const double width = round_to_dtype(static_cast<float>(in.width), dtype_);
  const double scale = std::sqrt(height * width) / static_cast<double>(c.input_sq_size);
  // The tables depend only on the grid (and scale): made once, reused by every later step.
  const std::array<double, 3> pos_key = {static_cast<double>(step.grid[1]),
                                         static_cast<double>(step.grid[2]), scale};
  step.pos_embed = pos_embed_.get(be_, pos_key, [&] {
    return to_model(transfer(
        *host_, position_table_2d(step.grid[1], step.grid[2], c.hidden_size, scale), be_));
  });
  step.rope_angles = rope_angles_.get(be_, step.grid[0], [&] {
    return transfer(*host_, rope_angles_rounded(step.grid[0], e.rope_freqs, dtype_), be_);
  });
  return step;
}

Tensor STDiT3::embed(const Tensor& latents, const STDiT3Step& step) {
  const STDiT3Config& c = config_;
  const auto& p = c.patch_size;
  const auto& g = step.grid;
  const std::int64_t b = step.batch;
  DITSERVE_CHECK(latents.dim() == 5 && latents.size(0) == b && latents.size(1) == c.in_channels &&
                     latents.size(2) == step.latent[0] && latents.size(3) == step.latent[1] &&
                     latents.size(4) == step.latent[2],
                 "STDiT3::embed: latents ", latents.describe(), " do not match the prepared step");
  Tensor x = latents.dtype() == dtype_ ? latents : cast(be_, latents, dtype_);
  const Shape padded = {b, c.in_channels, g[0] * p[0], g[1] * p[1], g[2] * p[2]};
  if (padded != x.shape()) {  // PatchEmbed3D zero-pads W, H and T at the end
    Tensor full = be_.empty(padded, dtype_);
    copy_into(be_, full, zero_.expand(padded));
    copy_into(be_, full.narrow(2, 0, step.latent[0]).narrow(3, 0, step.latent[1]).narrow(4, 0, step.latent[2]),
              x);
    x = full;
  }
  x = contiguous(be_, x);
  // Conv3d with kernel = stride = patch is a linear map of each patch: gather the patches
  // as rows ordered (kt, kh, kw, c), the layout of the channels-last weight.
  const Tensor patches =
      contiguous(be_, x.view({b, c.in_channels, g[0], p[0], g[1], p[1], g[2], p[2]})
                          .permute({0, 2, 4, 6, 3, 5, 7, 1}))
          .view({b, g[0], g[1] * g[2], p[0] * p[1] * p[2] * c.in_channels});
  const Tensor tokens = linear(be_, patches, embed_->patch_w, embed_->patch_b);
  return add(be_, tokens, step.pos_embed);
}

namespace {

void check_tokens(std::string_view what, const Tensor& tokens, const STDiT3Step& step,
                  std::int64_t hidden, DType dtype) {
  DITSERVE_CHECK(tokens.defined() && tokens.dim() == 4 && tokens.size(0) == step.batch &&
                     tokens.size(3) == hidden && tokens.dtype() == dtype,
                 "STDiT3::", what, ": tokens must be [", step.batch, ", T, S, ", hidden, "] ",
                 dtype_name(dtype), ", got ",
                 tokens.defined() ? tokens.describe() : std::string("undefined"));
}

}  // namespace

Tensor STDiT3::spatial_block(std::int64_t index, const Tensor& tokens, const STDiT3Step& step) {
  DITSERVE_CHECK(index >= 0 && index < config_.depth, "STDiT3::spatial_block: index ", index,
                 " outside 0..", config_.depth - 1);
  check_tokens("spatial_block", tokens, step, config_.hidden_size, dtype_);
  DITSERVE_CHECK(tokens.size(1) <= step.frames() && tokens.size(2) == step.tokens_per_frame(),
                 "STDiT3::spatial_block: tokens ", tokens.describe(), " must hold whole frames of ",
                 step.tokens_per_frame(), " tokens (at most ", step.frames(), " frames)");
  return spatial_[static_cast<std::size_t>(index)].forward(be_, contiguous(be_, tokens), step);
}

Tensor STDiT3::temporal_block(std::int64_t index, const Tensor& tokens, const STDiT3Step& step) {
  DITSERVE_CHECK(index >= 0 && index < config_.depth, "STDiT3::temporal_block: index ", index,
                 " outside 0..", config_.depth - 1);
  check_tokens("temporal_block", tokens, step, config_.hidden_size, dtype_);
  DITSERVE_CHECK(tokens.size(1) == step.frames() && tokens.size(2) <= step.tokens_per_frame(),
                 "STDiT3::temporal_block: tokens ", tokens.describe(), " must hold all ",
                 step.frames(), " frames (of at most ", step.tokens_per_frame(), " positions)");
  return temporal_[static_cast<std::size_t>(index)].forward(be_, contiguous(be_, tokens), step);
}

Tensor STDiT3::final(const Tensor& tokens, const STDiT3Step& step) {
  check_tokens("final", tokens, step, config_.hidden_size, dtype_);
  DITSERVE_CHECK(tokens.size(1) == step.frames() && tokens.size(2) == step.tokens_per_frame(),
                 "STDiT3::final: tokens ", tokens.describe(), " must hold the whole grid (",
                 step.frames(), " frames of ", step.tokens_per_frame(), " tokens)");
  return final_frames(tokens, 0, step);
}

Tensor STDiT3::final_frames(const Tensor& tokens, std::int64_t first, const STDiT3Step& step) {
  const STDiT3Config& c = config_;
  check_tokens("final", tokens, step, c.hidden_size, dtype_);
  const std::int64_t frames = tokens.size(1);
  DITSERVE_CHECK(first >= 0 && frames >= 1 && first + frames <= step.frames() &&
                     tokens.size(2) == step.tokens_per_frame(),
                 "STDiT3::final: tokens ", tokens.describe(), " must hold whole frames [", first,
                 ", ", first + frames, ") of the grid's ", step.frames(), " frames of ",
                 step.tokens_per_frame(), " tokens");
  const auto& p = c.patch_size;
  const auto& g = step.grid;
  const std::int64_t b = step.batch, out = c.out_channels();
  // T2IFinalLayer conditions on t (not t_mlp): shift, scale = table + t.
  const Tensor mod = add(be_, embed_->final_table.unsqueeze(0), step.t.unsqueeze(1));
  const Tensor shift = mod.select(1, 0).unsqueeze(1).unsqueeze(1);
  const Tensor scale = mod.select(1, 1).unsqueeze(1).unsqueeze(1);
  const Tensor h = modulate_layer_norm(be_, contiguous(be_, tokens), shift, scale, kNormEps);
  const Tensor y = embed_->final_linear(be_, h);
  // B (Nt Nh Nw) (pt ph pw C) -> B C (Nt pt) (Nh ph) (Nw pw), then crop the padding.
  const Tensor grid = contiguous(be_, y.view({b, frames, g[1], g[2], p[0], p[1], p[2], out})
                                          .permute({0, 7, 1, 4, 2, 5, 3, 6}))
                          .view({b, out, frames * p[0], g[1] * p[1], g[2] * p[2]});
  const std::int64_t kept = std::min(frames * p[0], step.latent[0] - first * p[0]);
  const Tensor cropped = grid.narrow(2, 0, kept)
                             .narrow(3, 0, step.latent[1])
                             .narrow(4, 0, step.latent[2]);
  return dtype_ == DType::f32 ? contiguous(be_, cropped) : cast(be_, cropped, DType::f32);
}

Tensor STDiT3::forward_full(const DenoiseInputs& inputs) {
  const STDiT3Step step = prepare(inputs);
  timeline_mark(be_, "prepare");
  Tensor x = embed(inputs.latents, step);
  timeline_mark(be_, "embed");
  for (std::int64_t i = 0; i < config_.depth; ++i) {
    x = spatial_block(i, x, step);
    x = temporal_block(i, x, step);
  }
  return final(x, step);
}

Tensor STDiT3::forward(const DenoiseInputs& inputs) {
  const Tensor full = forward_full(inputs);
  return contiguous(be_, full.narrow(1, 0, config_.in_channels));
}

namespace {

class STDiT3Stages final : public SpatioTemporalStages {
 public:
  STDiT3Stages(STDiT3& model, const DenoiseInputs& inputs)
      : model_(model), latents_(inputs.latents), step_(model.prepare(inputs)) {}

  Backend& backend() const override { return model_.backend(); }
  std::int64_t depth() const override { return model_.config().depth; }
  Tensor embed() override { return model_.embed(latents_, step_); }
  Tensor spatial_block(std::int64_t index, const Tensor& tokens) override {
    return model_.spatial_block(index, tokens, step_);
  }
  Tensor temporal_block(std::int64_t index, const Tensor& tokens) override {
    return model_.temporal_block(index, tokens, step_);
  }
  Tensor final(const Tensor& tokens) override {
    const Tensor full = model_.final(tokens, step_);
    return contiguous(backend(), full.narrow(1, 0, model_.config().in_channels));
  }
  bool has_final_frames() const override { return true; }
  Tensor final_frames(const Tensor& tokens, std::int64_t first) override {
    const Tensor part = model_.final_frames(tokens, first, step_);
    return contiguous(backend(), part.narrow(1, 0, model_.config().in_channels));
  }

 private:
  STDiT3& model_;
  Tensor latents_;
  STDiT3Step step_;
};

}  // namespace

std::unique_ptr<SpatioTemporalStages> STDiT3::prepare_stages(const DenoiseInputs& inputs) {
  return std::make_unique<STDiT3Stages>(*this, inputs);
}

Tensor STDiT3::null_captions(std::int64_t length) const {
  DITSERVE_CHECK(length >= 1 && length <= config_.model_max_length, "STDiT3: null caption length ",
                 length, " outside 1..", config_.model_max_length);
  return contiguous(be_, embed_->y_embedding.narrow(0, 0, length)).unsqueeze(0);
}

}  // namespace ditserve
