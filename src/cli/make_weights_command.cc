// ditserve make-weights: a random-weight checkpoint of a registered model, with exactly
// the public tensor names and shapes, in the directory layout of models/registry.h, so
// every load path runs without downloads.

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "io/atomic_file.h"
#include "models/registry.h"
#include "pipeline/tokenizer.h"
#include "tensor/error.h"

namespace ditserve::cli {
namespace {

struct MakeWeightsArgs {
  std::string model;
  std::string dir;
  std::string dtype = "bf16";
  std::string layout = "original";
  std::optional<std::uint64_t> seed;
};

void run(const MakeWeightsArgs& a) {
  const ModelSpec spec = find_model(a.model);
  const DType dtype = parse_dtype(a.dtype);
  DITSERVE_CHECK(dtype == DType::f32 || dtype == DType::bf16, "dtype: must be f32 or bf16, got ",
                 a.dtype);
  // Default: the seed of the built-in weights, so `tiny` written in f32 equals them.
  const std::uint64_t seed = a.seed.value_or(spec.builtin_seed.value_or(0));
  const std::filesystem::path dir = a.dir;
  const std::vector<ComponentWeights> components =
      model_components(spec, parse_weight_layout(a.layout));

  std::int64_t total = 0;
  for (const ComponentWeights& c : components) {
    std::filesystem::create_directories(dir / c.dir);
    write_random_checkpoint(dir / c.dir, c.params, seed, dtype);
    std::int64_t numel = 0;
    for (const ParamSpec& p : c.params) numel += shape_numel(p.shape);
    total += numel;
    std::cout << dir / c.dir << ": " << c.params.size() << " tensors, " << numel
              << " parameters\n";
  }
  // The built-in tokenizer; for opensora-v1.2 a stand-in (its ids fit T5's vocabulary)
  // until T5's own spiece.model is copied over it.
  const std::filesystem::path tokenizer = dir / std::string(kTokenizerPath);
  std::filesystem::create_directories(tokenizer.parent_path());
  AtomicFile file(tokenizer);
  const std::string_view bytes = tiny_tokenizer_model();
  file.write(bytes.data(), bytes.size());
  file.commit();
  std::cout << tokenizer << ": the built-in tiny tokenizer"
            << (spec.builtin_seed ? ""
                : spec.is_wan() ? " (a stand-in: replace it with google/umt5-xxl's spiece.model)"
                                : " (a stand-in: replace it with T5's spiece.model)")
            << "\n";
  std::cout << "wrote model " << spec.name << ": " << total << " parameters in "
            << dtype_name(dtype) << ", " << a.layout << " layout, seed " << seed << "\n";
}

}  // namespace

void add_make_weights_command(CLI::App& app) {
  auto args = std::make_shared<MakeWeightsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "make-weights", "Write a random-weight checkpoint of a model (public names and shapes)");
  cmd->add_option("model", args->model,
                  "Model: opensora-v1.2, tiny, wan2.1-t2v-1.3b, wan2.1-t2v-14b or tiny-wan")
      ->required();
  cmd->add_option("dir", args->dir, "Output directory")->required();
  cmd->add_option("--dtype", args->dtype, "Stored dtype: bf16 or f32")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed (default: the model's built-in seed, else 0)");
  cmd->add_option("--layout", args->layout,
                  "Tensor names: original (the model's own release) or diffusers (Wan only)")
      ->capture_default_str();
  cmd->callback([args] { run(*args); });
}

}  // namespace ditserve::cli
