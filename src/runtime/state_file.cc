#include "runtime/state_file.h"

#include <cstring>
#include <map>

#include "io/safetensors.h"
#include "tensor/error.h"

namespace ditserve::runtime {
namespace {

constexpr const char* kFormat = "ditserve-job-state/1";

std::string float_text(float x) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%a", static_cast<double>(x));  // exact
  return buffer;
}

// Everything of the request the latents depend on.
std::map<std::string, std::string> describe(const std::string& model, const GenerateRequest& r) {
  return {{"format", kFormat},
          {"model", model},
          {"prompt", r.prompt},
          {"frames", std::to_string(r.frames)},
          {"height", std::to_string(r.height)},
          {"width", std::to_string(r.width)},
          {"steps", std::to_string(r.steps)},
          {"guidance", float_text(r.guidance)},
          {"fps", float_text(r.fps)},
          {"seed", std::to_string(r.seed)}};
}

}  // namespace

void save_state(const std::filesystem::path& path, const std::string& model,
                const GenerateRequest& request, const Tensor& latents, int step) {
  std::map<std::string, std::string> meta = describe(model, request);
  meta["step"] = std::to_string(step);
  write_safetensors(path, {{"latents", latents}}, meta);
}

SavedState load_state(const std::filesystem::path& path, const std::string& model,
                      const GenerateRequest& request, const Shape& latent_shape) {
  const std::string where = "state_file: '" + path.string() + "'";
  try {
    const SafetensorsFile file(path);
    const std::map<std::string, std::string>& meta = file.metadata();
    for (const auto& [key, want] : describe(model, request)) {
      const auto it = meta.find(key);
      DITSERVE_CHECK(it != meta.end() && it->second == want, where, " was written for another ",
                     key == "format" ? "format" : "request", " (", key, " is '",
                     it == meta.end() ? std::string("missing") : it->second, "', expected '", want,
                     "')");
    }
    const auto step = meta.find("step");
    int done = -1;
    if (step != meta.end()) {
      try {
        done = std::stoi(step->second);
      } catch (const std::exception&) {
        done = -1;
      }
    }
    DITSERVE_CHECK(done >= 0 && done <= request.steps, where, " has no valid step (",
                   step == meta.end() ? std::string("missing") : step->second, ")");
    const Tensor mapped = file.get("latents", latent_shape);
    DITSERVE_CHECK(mapped.dtype() == DType::f32, where, ": latents must be F32");
    // A copy of our own: the file is replaced while the job runs.
    Tensor latents = Tensor::empty_host(latent_shape, DType::f32);
    std::memcpy(latents.data<float>(), mapped.data<float>(),
                static_cast<std::size_t>(mapped.numel()) * sizeof(float));
    return {latents, done};
  } catch (const InvalidArgument& e) {
    const std::string what = e.what();
    if (what.rfind("state_file", 0) == 0) throw;
    throw InvalidArgument(where + ": " + what);
  } catch (const Error& e) {
    throw InvalidArgument(where + ": " + e.what());
  }
}

}  // namespace ditserve::runtime
