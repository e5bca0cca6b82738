#include "models/wan_transformer.h"

#include <cmath>
#include <string>

#include "kernels/activation.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/timing.h"
#include "models/wan_block.h"
#include "parallel/ulysses.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

// The non-block tensors, without their ".weight"/".bias" suffix (the tables have none).
enum class Part { patch, text1, text2, time1, time2, time_proj, head, head_table };

std::string part_name(WanLayout layout, Part part) {
  const bool original = layout == WanLayout::original;
  switch (part) {
    case Part::patch:
      return "patch_embedding";
    case Part::text1:
      return original ? "text_embedding.0" : "condition_embedder.text_embedder.linear_1";
    case Part::text2:
      return original ? "text_embedding.2" : "condition_embedder.text_embedder.linear_2";
    case Part::time1:
      return original ? "time_embedding.0" : "condition_embedder.time_embedder.linear_1";
    case Part::time2:
      return original ? "time_embedding.2" : "condition_embedder.time_embedder.linear_2";
    case Part::time_proj:
      return original ? "time_projection.1" : "condition_embedder.time_proj";
    case Part::head:
      return original ? "head.head" : "proj_out";
    case Part::head_table:
      return original ? "head.modulation" : "scale_shift_table";
  }
  return {};
}

void append_linear(std::vector<ParamSpec>& specs, const std::string& name, std::int64_t out,
                   std::int64_t in) {
  specs.push_back({name + ".weight", {out, in}, ParamInit::normal, 0.02f});
  specs.push_back({name + ".bias", {out}, ParamInit::zeros, 0.0f});
}

struct Linear {
  Tensor w, b;
  Tensor operator()(Backend& be, const Tensor& x, Activation act = Activation::none) const {
    return linear(be, x, w, b, act);
  }
};

Linear load_linear(const WeightLoader& w, const std::string& name, std::int64_t out,
                   std::int64_t in) {
  return {w.load(name + ".weight", {out, in}), w.load(name + ".bias", {out})};
}

std::int64_t patch_volume(const WanConfig& c) {
  return c.patch_size[0] * c.patch_size[1] * c.patch_size[2];
}

std::string describe_or_undefined(const Tensor& t) {
  return t.defined() ? t.describe() : std::string("undefined");
}

}  // namespace

std::array<std::int64_t, 3> WanConfig::rope_dims() const {
  const std::int64_t d = head_dim();
  return {d - 4 * (d / 6), 2 * (d / 6), 2 * (d / 6)};
}

void WanConfig::validate() const {
  DITSERVE_CHECK(dim > 0 && num_heads > 0 && dim % num_heads == 0, "WanConfig: dim ", dim,
                 " must be a positive multiple of num_heads ", num_heads);
  DITSERVE_CHECK(head_dim() % 2 == 0 && head_dim() >= 6, "WanConfig: head_dim ", head_dim(),
                 " must be even and >= 6 (3D RoPE rotates pairs in three sections)");
  DITSERVE_CHECK(num_layers >= 1, "WanConfig: num_layers must be >= 1, got ", num_layers);
  DITSERVE_CHECK(ffn_dim >= 1, "WanConfig: ffn_dim must be >= 1, got ", ffn_dim);
  for (int i = 0; i < 3; ++i) {
    DITSERVE_CHECK(patch_size[i] >= 1, "WanConfig: patch_size[", i, "] must be >= 1, got ",
                   patch_size[i]);
  }
  DITSERVE_CHECK(in_channels >= 1 && out_channels >= 1,
                 "WanConfig: in_channels and out_channels must be >= 1");
  DITSERVE_CHECK(text_dim >= 1 && text_len >= 1, "WanConfig: text_dim and text_len must be >= 1");
  DITSERVE_CHECK(freq_dim >= 2 && freq_dim % 2 == 0,
                 "WanConfig: freq_dim must be even and >= 2, got ", freq_dim);
  DITSERVE_CHECK(eps > 0.0f, "WanConfig: eps must be > 0, got ", eps);
  DITSERVE_CHECK(rope_theta > 0, "WanConfig: rope_theta must be > 0");
}

WanConfig wan_t2v_1_3b() { return WanConfig{}; }

WanConfig wan_t2v_14b() {
  WanConfig c;
  c.dim = 5120;
  c.ffn_dim = 13824;
  c.num_layers = 40;
  c.num_heads = 40;
  return c;
}

WanConfig wan_tiny() {
  WanConfig c;
  c.dim = 96;
  c.ffn_dim = 192;
  c.num_layers = 2;
  c.num_heads = 4;
  c.text_dim = 64;
  c.text_len = 64;
  return c;
}

std::vector<ParamSpec> wan_parameters(const WanConfig& c, WanLayout layout) {
  c.validate();
  const auto name = [&](Part part) { return part_name(layout, part); };
  const auto& p = c.patch_size;
  const float table_std = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.dim)));
  std::vector<ParamSpec> specs;
  specs.push_back({name(Part::patch) + ".weight",
                   {c.dim, c.in_channels, p[0], p[1], p[2]},
                   ParamInit::normal,
                   0.02f});
  specs.push_back({name(Part::patch) + ".bias", {c.dim}, ParamInit::zeros, 0.0f});
  append_linear(specs, name(Part::text1), c.dim, c.text_dim);
  append_linear(specs, name(Part::text2), c.dim, c.dim);
  append_linear(specs, name(Part::time1), c.dim, c.freq_dim);
  append_linear(specs, name(Part::time2), c.dim, c.dim);
  append_linear(specs, name(Part::time_proj), 6 * c.dim, c.dim);
  for (std::int64_t i = 0; i < c.num_layers; ++i) WanBlock::append_params(specs, c, layout, i);
  // Wan zero-initialises the head; random weights keep it normal so that tests see signal.
  append_linear(specs, name(Part::head), patch_volume(c) * c.out_channels, c.dim);
  specs.push_back({name(Part::head_table), {1, 2, c.dim}, ParamInit::normal, table_std});
  return specs;
}

WanLayout detect_wan_layout(const WeightLoader& w) {
  const bool diffusers = w.contains(part_name(WanLayout::diffusers, Part::head) + ".weight");
  const bool original = w.contains(part_name(WanLayout::original, Part::head) + ".weight");
  DITSERVE_CHECK(diffusers || original,
                 "Wan DiT checkpoint: neither proj_out.weight (diffusers) "
                 "nor head.head.weight (Wan 2.1 release) found; is this a Wan checkpoint?");
  return diffusers ? WanLayout::diffusers : WanLayout::original;
}

struct WanTransformer::Embedders {
  Tensor patch_w;  // [dim, pt*ph*pw*in]: the Conv3d weight, channels-last, flattened
  Tensor patch_b;
  Linear text1, text2, time1, time2, time_proj, head;
  Tensor head_table;  // [1, 2, dim]
};

WanTransformer::WanTransformer(WanConfig config, const WeightLoader& w)
    : config_(std::move(config)),
      layout_(detect_wan_layout(w)),
      be_(w.backend()),
      dtype_(w.dtype()),
      host_(make_backend(Device::cpu())),
      embed_(std::make_unique<Embedders>()) {
  config_.validate();
  const WanConfig& c = config_;
  const auto name = [&](Part part) { return part_name(layout_, part); };
  const auto& p = c.patch_size;
  Embedders& e = *embed_;
  // The patch embedding first: a checkpoint of another size fails here, naming it.
  Tensor conv;
  try {
    conv = w.load_conv(name(Part::patch) + ".weight", {c.dim, c.in_channels, p[0], p[1], p[2]});
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string("WanTransformer (dim ") + std::to_string(c.dim) + ", " +
                          std::to_string(c.num_layers) + " layers): " + e.what() +
                          " (a checkpoint of another model size?)");
  }
  e.patch_w = contiguous(be_, conv).view({c.dim, -1});
  e.patch_b = w.load(name(Part::patch) + ".bias", {c.dim});
  e.text1 = load_linear(w, name(Part::text1), c.dim, c.text_dim);
  e.text2 = load_linear(w, name(Part::text2), c.dim, c.dim);
  e.time1 = load_linear(w, name(Part::time1), c.dim, c.freq_dim);
  e.time2 = load_linear(w, name(Part::time2), c.dim, c.dim);
  e.time_proj = load_linear(w, name(Part::time_proj), 6 * c.dim, c.dim);
  e.head = load_linear(w, name(Part::head), patch_volume(c) * c.out_channels, c.dim);
  e.head_table = w.load(name(Part::head_table), {1, 2, c.dim});
  blocks_.reserve(static_cast<std::size_t>(c.num_layers));
  for (std::int64_t i = 0; i < c.num_layers; ++i) blocks_.emplace_back(c, w, layout_, i);
  const Tensor zero = transfer(*host_, Tensor::from_vector({0.0f}, {1}), be_);
  zero_ = dtype_ == DType::f32 ? zero : cast(be_, zero, dtype_);
}

WanTransformer::~WanTransformer() = default;

WanStep WanTransformer::prepare(const DenoiseInputs& in) {
  const WanConfig& c = config_;
  const Tensor& x = in.latents;
  DITSERVE_CHECK(x.defined() && x.dim() == 5 && x.dtype() == DType::f32 &&
                     x.size(1) == c.in_channels && x.device() == be_.device(),
                 "WanTransformer: latents must be f32 [B, ", c.in_channels, ", T, H, W] on ",
                 be_.device().str(), ", got ", describe_or_undefined(x));
  const std::int64_t b = x.size(0);
  DITSERVE_CHECK(b >= 1, "WanTransformer: latents ", x.describe(), " has an empty batch");
  WanStep step;
  step.batch = b;
  const char* axes[3] = {"T (latent frames)", "H (latent rows)", "W (latent columns)"};
  for (int i = 0; i < 3; ++i) {
    const std::int64_t size = x.size(2 + i), patch = c.patch_size[i];
    DITSERVE_CHECK(size >= 1 && size % patch == 0, "WanTransformer: latents ", axes[i], " = ", size,
                   " must be a positive multiple of the patch size ", patch);
    step.grid[i] = size / patch;
  }
  const Tensor& ts = in.timesteps;
  DITSERVE_CHECK(ts.defined() && ts.dim() == 1 && ts.size(0) == b && ts.dtype() == DType::f32 &&
                     ts.device() == be_.device(),
                 "WanTransformer: timesteps must be f32 [", b, "] on ", be_.device().str(),
                 ", got ", describe_or_undefined(ts));
  const Tensor& y = in.captions;
  DITSERVE_CHECK(y.defined() && y.dim() == 3 && y.size(0) == b && is_floating(y.dtype()) &&
                     y.size(2) == c.text_dim && y.device() == be_.device(),
                 "WanTransformer: captions must be [", b, ", L, ", c.text_dim, "] on ",
                 be_.device().str(), ", got ", describe_or_undefined(y));
  const std::int64_t len = y.size(1);
  DITSERVE_CHECK(len >= 1 && len <= c.text_len, "WanTransformer: captions has ", len,
                 " tokens; allowed 1..", c.text_len, " (text_len)");
  const Tensor& lens = in.caption_lengths;
  DITSERVE_CHECK(lens.defined() && lens.dim() == 1 && lens.size(0) == b &&
                     lens.dtype() == DType::i32 && lens.device() == be_.device(),
                 "WanTransformer: caption_lengths must be i32 [", b, "] on ", be_.device().str(),
                 ", got ", describe_or_undefined(lens));
  // The values only where they are host memory (DenoiseInputs): no wait for a GPU per step.
  if (lens.device().is_cpu()) check_caption_lengths("WanTransformer", lens, len);
  const auto to_model = [&](const Tensor& t) {
    return t.dtype() == dtype_ ? t : cast(be_, t, dtype_);
  };
  const Embedders& e = *embed_;

  // Time: sinusoid [cos, sin] -> MLP (SiLU) = e; SiLU -> 6-way projection = e0.
  const Tensor sinusoid =
      timestep_embedding(be_, ts, static_cast<int>(c.freq_dim), /*cos_first=*/true);
  step.time = e.time2(be_, e.time1(be_, to_model(sinusoid), Activation::silu));
  step.modulation = e.time_proj(be_, silu(be_, step.time)).view({b, 6, c.dim});

  // Captions: rows past each length zeroed, then zero rows up to text_len (Wan's pipelines
  // trim the encoder output to the prompt's tokens and pad with zeros). The mask is row
  // lengths[b] of a table whose row n holds n ones, gathered where the lengths live.
  if (!caption_mask_table_.defined()) {
    Tensor table = Tensor::empty_host({c.text_len + 1, c.text_len}, DType::f32);
    for (std::int64_t n = 0; n <= c.text_len; ++n) {
      for (std::int64_t t = 0; t < c.text_len; ++t)
        table.data<float>()[n * c.text_len + t] = t < n ? 1.0f : 0.0f;
    }
    caption_mask_table_ = to_model(transfer(*host_, table, be_));
  }
  const Tensor keep = embedding(be_, caption_mask_table_, lens).view({b, c.text_len, 1});
  Tensor padded = be_.empty({b, c.text_len, c.text_dim}, dtype_);
  if (len < c.text_len) copy_into(be_, padded, zero_.expand(padded.shape()));
  copy_into(be_, padded.narrow(1, 0, len), to_model(y));
  padded = mul(be_, padded, keep);
  step.context = e.text2(be_, e.text1(be_, padded, Activation::gelu_tanh));

  step.rope_angles = rope_angles_.get(be_, step.grid, [&] {
    return transfer(*host_, rope_angles_3d(step.grid, c.rope_dims(), c.rope_theta), be_);
  });
  return step;
}

Tensor WanTransformer::embed(const Tensor& latents, const WanStep& step) {
  const WanConfig& c = config_;
  const auto& p = c.patch_size;
  const auto& g = step.grid;
  const std::int64_t b = step.batch;
  DITSERVE_CHECK(latents.dim() == 5 && latents.size(0) == b && latents.size(1) == c.in_channels &&
                     latents.size(2) == g[0] * p[0] && latents.size(3) == g[1] * p[1] &&
                     latents.size(4) == g[2] * p[2],
                 "WanTransformer::embed: latents ", latents.describe(),
                 " do not match the prepared step");
  const Tensor x =
      contiguous(be_, latents.dtype() == dtype_ ? latents : cast(be_, latents, dtype_));
  // Conv3d with kernel = stride = patch is a linear map of each patch: gather the patches
  // as rows ordered (kt, kh, kw, c), the layout of the channels-last weight.
  const Tensor patches =
      contiguous(be_, x.view({b, c.in_channels, g[0], p[0], g[1], p[1], g[2], p[2]})
                          .permute({0, 2, 4, 6, 3, 5, 7, 1}))
          .view({b, step.tokens(), patch_volume(c) * c.in_channels});
  Tensor tokens = linear(be_, patches, embed_->patch_w, embed_->patch_b);
  timeline_mark(be_, "prepare_embed");  // with the step's prepare (bench step --breakdown)
  return tokens;
}

namespace {

void check_rows(std::string_view what, const Tensor& tokens, const WanStep& step, std::int64_t dim,
                DType dtype) {
  DITSERVE_CHECK(tokens.defined() && tokens.dim() == 3 && tokens.size(0) == step.batch &&
                     tokens.size(1) >= 1 && tokens.size(2) == dim && tokens.dtype() == dtype,
                 "WanTransformer::", what, ": tokens must be [", step.batch, ", n >= 1, ", dim,
                 "] ", dtype_name(dtype), ", got ", describe_or_undefined(tokens));
}

}  // namespace

Tensor WanTransformer::attention_inputs(std::int64_t block, const Tensor& tokens,
                                        std::int64_t first, const WanStep& step) {
  DITSERVE_CHECK(block >= 0 && block < config_.num_layers, "WanTransformer: block ", block,
                 " outside 0..", config_.num_layers - 1);
  check_rows("attention_inputs", tokens, step, config_.dim, dtype_);
  DITSERVE_CHECK(first >= 0 && first + tokens.size(1) <= step.tokens(),
                 "WanTransformer::attention_inputs: rows [", first, ", ", first + tokens.size(1),
                 ") outside the ", step.tokens(), "-token sequence");
  return blocks_[static_cast<std::size_t>(block)].attention_inputs(be_, contiguous(be_, tokens),
                                                                   first, step);
}

Tensor WanTransformer::finish_block(std::int64_t block, const Tensor& tokens,
                                    const Tensor& attended, const WanStep& step) {
  DITSERVE_CHECK(block >= 0 && block < config_.num_layers, "WanTransformer: block ", block,
                 " outside 0..", config_.num_layers - 1);
  check_rows("finish_block", tokens, step, config_.dim, dtype_);
  const Shape want = {tokens.size(0), tokens.size(1), config_.num_heads, config_.head_dim()};
  DITSERVE_CHECK(attended.defined() && attended.shape() == want && attended.dtype() == dtype_,
                 "WanTransformer::finish_block: attended must be ", shape_str(want), ", got ",
                 describe_or_undefined(attended));
  return blocks_[static_cast<std::size_t>(block)].finish(be_, contiguous(be_, tokens), attended,
                                                         step);
}

Tensor WanTransformer::final(const Tensor& tokens, const WanStep& step) {
  const WanConfig& c = config_;
  check_rows("final", tokens, step, c.dim, dtype_);
  DITSERVE_CHECK(tokens.size(1) == step.tokens(), "WanTransformer::final: tokens ",
                 tokens.describe(), " must hold the whole ", step.tokens(), "-token sequence");
  const auto& p = c.patch_size;
  const auto& g = step.grid;
  const std::int64_t b = step.batch, out = c.out_channels;
  // (head table + e)[:, 0] shifts, [:, 1] scales.
  const Tensor mod = add(be_, embed_->head_table, step.time.unsqueeze(1));  // [B, 2, C]
  const Tensor shift = mod.select(1, 0).unsqueeze(1);
  const Tensor scale = mod.select(1, 1).unsqueeze(1);
  const Tensor h = modulate_layer_norm(be_, contiguous(be_, tokens), shift, scale, c.eps);
  const Tensor y = embed_->head(be_, h);
  // B (F H W) (pt ph pw C) -> B C (F pt) (H ph) (W pw).
  const Tensor grid =
      contiguous(
          be_,
          y.view({b, g[0], g[1], g[2], p[0], p[1], p[2], out}).permute({0, 7, 1, 4, 2, 5, 3, 6}))
          .view({b, out, g[0] * p[0], g[1] * p[1], g[2] * p[2]});
  return dtype_ == DType::f32 ? grid : cast(be_, grid, DType::f32);
}

namespace {

class WanStages final : public FullAttentionStages {
 public:
  WanStages(WanTransformer& model, const DenoiseInputs& inputs)
      : model_(model), latents_(inputs.latents), step_(model.prepare(inputs)) {}

  Backend& backend() const override { return model_.backend(); }
  std::int64_t depth() const override { return model_.config().num_layers; }
  std::int64_t heads() const override { return model_.config().num_heads; }
  std::int64_t head_dim() const override { return model_.config().head_dim(); }
  std::int64_t sequence_length() const override { return step_.tokens(); }
  Tensor embed() override { return model_.embed(latents_, step_); }
  Tensor attention_inputs(std::int64_t block, const Tensor& tokens, std::int64_t first) override {
    return model_.attention_inputs(block, tokens, first, step_);
  }
  Tensor finish_block(std::int64_t block, const Tensor& tokens, const Tensor& attended) override {
    return model_.finish_block(block, tokens, attended, step_);
  }
  Tensor final(const Tensor& tokens) override { return model_.final(tokens, step_); }

 private:
  WanTransformer& model_;
  Tensor latents_;
  WanStep step_;
};

}  // namespace

std::unique_ptr<FullAttentionStages> WanTransformer::prepare_stages(const DenoiseInputs& inputs) {
  return std::make_unique<WanStages>(*this, inputs);
}

Tensor WanTransformer::forward(const DenoiseInputs& inputs) {
  WanStages stages(*this, inputs);
  return full_attention_forward(stages);
}

}  // namespace ditserve
