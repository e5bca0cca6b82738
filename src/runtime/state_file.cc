#include "runtime/state_file.h"

#include <cstring>
#include <map>

#include "io/safetensors.h"
#include "kernels/copy.h"
#include "tensor/error.h"

namespace ditserve::runtime {
namespace {

// 2: the sampler, its shift and history and the negative prompt were added.
constexpr const char* kFormat = "ditserve-job-state/2";
// Still read, so jobs saved before an upgrade resume: latents and step only (a unipc job
// then resumes without its history, close to but not exactly the uninterrupted run).
constexpr const char* kFormatV1 = "ditserve-job-state/1";
constexpr const char* kLastSample = "unipc.last_sample";

std::string x0_name(std::size_t i) { return "unipc.x0." + std::to_string(i); }

std::string float_text(double x) {
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "%a", x);  // exact
  return buffer;
}

// The sampler and shift the request runs with: its own, else the model's defaults
// (as Pipeline::start resolves them), so a request that leaves them unset matches a
// state saved from one that spelled the defaults out.
std::pair<SamplerKind, double> sampler_of(const std::string& model, const GenerateRequest& r) {
  GenerateRequest defaults;
  try {
    defaults = default_request(find_model(model));
  } catch (const InvalidArgument&) {
    // Not a registry model (tests): Open-Sora's defaults.
  }
  const SamplerKind sampler =
      r.sampler.value_or(defaults.sampler.value_or(SamplerKind::rectified_flow));
  return {sampler, r.shift.value_or(defaults.shift.value_or(SamplerOptions{}.shift))};
}

// Everything of the request the latents depend on.
std::map<std::string, std::string> describe(const std::string& model, const GenerateRequest& r) {
  const auto [sampler, shift] = sampler_of(model, r);
  return {{"format", kFormat},
          {"model", model},
          {"prompt", r.prompt},
          {"negative_prompt", r.negative_prompt},
          {"frames", std::to_string(r.frames)},
          {"height", std::to_string(r.height)},
          {"width", std::to_string(r.width)},
          {"steps", std::to_string(r.steps)},
          {"guidance", float_text(r.guidance)},
          {"fps", float_text(r.fps)},
          {"seed", std::to_string(r.seed)},
          {"sampler", sampler_name(sampler)},
          {"shift", float_text(shift)}};
}

int int_field(const std::map<std::string, std::string>& meta, const std::string& key) {
  const auto it = meta.find(key);
  if (it == meta.end()) return -1;
  try {
    return std::stoi(it->second);
  } catch (const std::exception&) {
    return -1;
  }
}

// A copy of our own of a tensor of the file: the file is replaced while the job runs.
Tensor read_f32(const SafetensorsFile& file, const std::string& name, const Shape& shape,
                const std::string& where) {
  const Tensor mapped = file.get(name, shape);
  DITSERVE_CHECK(mapped.dtype() == DType::f32, where, ": ", name, " must be F32");
  Tensor out = Tensor::empty_host(shape, DType::f32);
  std::memcpy(out.data<float>(), mapped.data<float>(),
              static_cast<std::size_t>(mapped.numel()) * sizeof(float));
  return out;
}

}  // namespace

void save_state(const std::filesystem::path& path, const std::string& model,
                const GenerateRequest& request, const GenerationState& state) {
  std::map<std::string, std::string> meta = describe(model, request);
  meta["step"] = std::to_string(state.step_index());
  NamedTensors tensors{{"latents", state.latents()}};
  if (const std::optional<FlowUniPC::History> h = state.solver_history()) {
    meta["unipc.lower_order_nums"] = std::to_string(h->lower_order_nums);
    meta["unipc.this_order"] = std::to_string(h->this_order);
    meta["unipc.predictions"] = std::to_string(h->x0.size());
    if (h->last_sample.defined()) tensors.emplace_back(kLastSample, h->last_sample);
    for (std::size_t i = 0; i < h->x0.size(); ++i) tensors.emplace_back(x0_name(i), h->x0[i]);
  }
  write_safetensors(path, tensors, meta);
}

SavedState load_state(const std::filesystem::path& path, const std::string& model,
                      const GenerateRequest& request, const Shape& latent_shape) {
  const std::string where = "state_file: '" + path.string() + "'";
  try {
    const SafetensorsFile file(path);
    const std::map<std::string, std::string>& meta = file.metadata();
    const auto format = meta.find("format");
    const bool v1 = format != meta.end() && format->second == kFormatV1;
    for (const auto& [key, want] : describe(model, request)) {
      if (v1 && (key == "format" || key == "negative_prompt" || key == "sampler" || key == "shift"))
        continue;
      const auto it = meta.find(key);
      DITSERVE_CHECK(it != meta.end() && it->second == want, where, " was written for another ",
                     key == "format" ? "format" : "request", " (", key, " is '",
                     it == meta.end() ? std::string("missing") : it->second, "', expected '", want,
                     "')");
    }
    const int done = int_field(meta, "step");
    DITSERVE_CHECK(done >= 0 && done <= request.steps, where, " has no valid step (",
                   meta.count("step") ? meta.at("step") : std::string("missing"), ")");
    SavedState out{read_f32(file, "latents", latent_shape, where), done, std::nullopt};
    if (!v1 && sampler_of(model, request).first == SamplerKind::unipc) {
      const int predictions = int_field(meta, "unipc.predictions");
      DITSERVE_CHECK(predictions >= 0 && predictions <= 2, where,
                     " has no valid UniPC history (unipc.predictions ",
                     meta.count("unipc.predictions") ? meta.at("unipc.predictions")
                                                     : std::string("missing"),
                     ")");
      FlowUniPC::History h;
      h.lower_order_nums = int_field(meta, "unipc.lower_order_nums");
      h.this_order = int_field(meta, "unipc.this_order");
      if (file.contains(kLastSample)) h.last_sample = read_f32(file, kLastSample, latent_shape, where);
      for (int i = 0; i < predictions; ++i)
        h.x0.push_back(read_f32(file, x0_name(static_cast<std::size_t>(i)), latent_shape, where));
      out.unipc = std::move(h);
    }
    return out;
  } catch (const InvalidArgument& e) {
    const std::string what = e.what();
    if (what.rfind("state_file", 0) == 0) throw;
    throw InvalidArgument(where + ": " + what);
  } catch (const Error& e) {
    throw InvalidArgument(where + ": " + e.what());
  }
}

GenerationState resume_state(const SavedState& saved, const GenerationState& fresh, Backend& be) {
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const auto upload = [&](const Tensor& t) { return t.defined() ? transfer(*host, t, be) : t; };
  GenerationState out(upload(saved.latents), fresh.captions(), fresh.caption_lengths(),
                      fresh.options(), static_cast<std::size_t>(saved.step));
  if (saved.unipc && out.solver_history()) {
    FlowUniPC::History h = *saved.unipc;
    h.last_sample = upload(h.last_sample);
    for (Tensor& t : h.x0) t = upload(t);
    try {
      out.restore_solver_history(std::move(h));
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(std::string("state_file: ") + e.what());
    }
  }
  return out;
}

}  // namespace ditserve::runtime
