// ditserve bench step: times one denoising step of STDiT3 or the Wan DiT (bench_wan.cc),
// or a VAE decode, or a T5/UMT5 encode, on one device with random weights generated in memory (no checkpoint is
// written or read), and reports ms/step, achieved TFLOP/s and the fraction of a given
// matmul peak as JSON. Optionally writes what an external reference needs to run the
// same computation: the DiT's weights (bf16 safetensors), each row's inputs and output,
// or the parameter specs of the VAE (bench/reference/step_reference.py reads them).
//
// FLOPs of one STDiT3 step (multiply-adds count 2), per sample of the batch B, with
// N = T*S tokens (T frames of S tokens after patching), C hidden, L caption tokens,
// F = mlp_ratio*C, depth d (d spatial + d temporal blocks):
//   each block's linears  2*N*(3C*C + C*C + C*C + C*C + 2*C*F) + 2*L*C*2C   (qkv, proj,
//                         cross q, cross proj, fc1+fc2; cross kv on the caption)
//   spatial attention     4*N*S*C      (QK^T and PV over the S tokens of a frame)
//   temporal attention    4*N*T*C
//   cross attention       4*N*L*C      (in both kinds of block)
//   caption projection    2*L*(cc*C + C*C)  (y_embedder, once per step)
//   patch embedding and final layer  2*N*C*(in_channels + out_channels)*pt*ph*pw
// step FLOPs = B * (d * (2*linears + 4NSC + 4NTC + 8NLC) + caption + embed/final).
// Timestep/fps embedders and all elementwise work are left out (< 0.1%).

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli/bench_step.h"
#include "cli/commands.h"
#include "io/safetensors.h"
#include "kernels/backend.h"
#include "kernels/copy.h"
#include "kernels/timing.h"
#include "models/prefetched_weights.h"
#include "models/registry.h"
#include "tensor/dtype.h"
#include "tensor/error.h"

namespace ditserve::cli {
namespace {


// FLOPs of one STDiT3 evaluation (the formula at the top of this file).
double stdit3_step_flops(const STDiT3Config& c, std::int64_t batch, std::int64_t caption_tokens,
                         const std::array<std::int64_t, 3>& grid) {
  const double t = static_cast<double>(grid[0]), s = static_cast<double>(grid[1] * grid[2]);
  const double n = t * s, ch = static_cast<double>(c.hidden_size);
  const double l = static_cast<double>(caption_tokens), f = static_cast<double>(c.mlp_hidden());
  const double linears = 2 * n * (6 * ch * ch + 2 * ch * f) + 2 * l * ch * 2 * ch;
  const double blocks = 2 * linears + 4 * n * s * ch + 4 * n * t * ch + 8 * n * l * ch;
  const double caption = 2 * l * (static_cast<double>(c.caption_channels) * ch + ch * ch);
  const auto& p = c.patch_size;
  const double patch = static_cast<double>(p[0] * p[1] * p[2]);
  const double ends = 2 * n * ch * static_cast<double>(c.in_channels + c.out_channels()) * patch;
  return static_cast<double>(batch) * (static_cast<double>(c.depth) * blocks + caption + ends);
}

// FLOPs of one T5 encode of `tokens` tokens per sample (gated-GELU FFN).
double t5_flops(const T5Config& c, std::int64_t batch, std::int64_t tokens) {
  const double l = static_cast<double>(tokens), d = static_cast<double>(c.d_model);
  const double inner = static_cast<double>(c.heads * c.d_kv), ff = static_cast<double>(c.d_ff);
  const double layer = 2 * l * (4 * d * inner + 3 * d * ff) + 4 * l * l * inner;
  return static_cast<double>(batch) * static_cast<double>(c.layers) * layer;
}

void bench_dit(const BenchArgs& a, const ModelSpec& spec, Backend& be, nlohmann::json& out) {
  const STDiT3Config& cfg = spec.transformer;
  const std::vector<Row> rows = select_rows(a, spec);
  const std::int64_t len = a.caption_tokens > 0 ? a.caption_tokens : cfg.model_max_length;
  DITSERVE_CHECK(len <= cfg.model_max_length, "caption-tokens: ", len, " exceeds the model's ",
                 cfg.model_max_length);
  DITSERVE_CHECK(a.batch >= 1, "batch: must be >= 1, got ", a.batch);
  const DType dtype = default_dtypes(be.device()).transformer;
  PrefetchedRandomWeights weights(stdit3_parameters(cfg), a.seed);
  if (!a.export_weights.empty()) weights.export_bf16(a.export_weights);
  STDiT3 model(cfg, WeightLoader(weights, be, dtype));

  out["dtype"] = dtype_name(dtype);
  out["batch"] = a.batch;
  out["caption_tokens"] = len;
  out["flop_formula"] =
      "B*(depth*(2*(2N(6C^2+2CF)+4LC^2) + 4NSC + 4NTC + 8NLC) + 2L(cc*C+C^2) + "
      "2NC(in+out)*patch), N=T*S tokens, F=mlp hidden, L caption tokens, cc caption channels";
  for (const Row& row : rows) {
    std::mt19937_64 rng = row_rng(a, row);
    const auto& lt = row.latent;
    const Tensor latents = random_host({a.batch, cfg.in_channels, lt[0], lt[1], lt[2]}, rng);
    const Tensor timesteps = Tensor::from_vector(std::vector<float>(static_cast<std::size_t>(a.batch), 500.0f), {a.batch});
    const Tensor captions = random_host({a.batch, len, cfg.caption_channels}, rng, 0.2);
    const Tensor lengths = i32_host(std::vector<std::int32_t>(static_cast<std::size_t>(a.batch),
                                                              static_cast<std::int32_t>(len)));
    DenoiseInputs in = upload_inputs(be, latents, timesteps, captions, lengths);
    in.fps = 24.0f;
    in.height = row.height;
    in.width = row.width;

    std::array<std::int64_t, 3> grid{};
    for (int i = 0; i < 3; ++i) grid[i] = (lt[i] + cfg.patch_size[i] - 1) / cfg.patch_size[i];
    const double flops = stdit3_step_flops(cfg, a.batch, len, grid);
    if (a.cuda_graphs) {
      out["rows"].push_back(time_graphed_dit_row(a, be, row, grid, flops, model, in));
      continue;
    }
    Tensor output;
    out["rows"].push_back(time_dit_row(
        a, be, row, grid, flops,
        {{"latents", latents},
         {"timesteps", timesteps},
         {"captions", captions},
         {"caption_lengths", lengths},
         {"fps", Tensor::from_vector({in.fps}, {1})},
         {"height", Tensor::from_vector({static_cast<float>(row.height)}, {1})},
         {"width", Tensor::from_vector({static_cast<float>(row.width)}, {1})}},
        dtype, output, [&] { output = model.forward_full(in); }));
  }
}

void write_param_specs(const std::filesystem::path& path, const std::vector<ParamSpec>& specs) {
  nlohmann::json j = nlohmann::json::array();
  for (const ParamSpec& p : specs) {
    const char* init = p.init == ParamInit::normal  ? "normal"
                       : p.init == ParamInit::zeros ? "zeros"
                       : p.init == ParamInit::ones  ? "ones"
                                                    : "rope_frequencies";
    j.push_back({{"name", p.name}, {"shape", p.shape}, {"init", init}, {"std", p.std}});
  }
  std::ofstream(path) << j.dump() << "\n";
}

void bench_vae(const BenchArgs& a, const ModelSpec& spec, Backend& be, nlohmann::json& out) {
  const bool tiny = spec.builtin_seed.has_value();
  const std::int64_t frames = a.frames > 0 ? a.frames : (tiny ? 9 : 51);
  const auto [width, height] =
      a.size.empty() ? std::array<std::int64_t, 2>{tiny ? 32 : 1280, tiny ? 32 : 720} : parse_size(a.size);
  const std::vector<ParamSpec> specs = opensora_vae_decoder_parameters(spec.vae);
  if (!a.param_specs.empty()) write_param_specs(a.param_specs, specs);
  const DType dtype = default_dtypes(be.device()).vae;
  PrefetchedRandomWeights weights(specs, a.seed);
  OpenSoraVAE vae(spec.vae, weights, be, dtype);
  out["dtype"] = dtype_name(dtype);
  out["rows"].push_back(time_vae_decode(a, be, vae, width, height, frames));
}

void bench_t5(const BenchArgs& a, const ModelSpec& spec, Backend& be, nlohmann::json& out) {
  const T5Config& cfg = spec.text_encoder;
  const std::int64_t len = a.caption_tokens > 0 ? a.caption_tokens : cfg.max_tokens;
  DITSERVE_CHECK(len <= cfg.max_tokens, "caption-tokens: ", len, " exceeds the encoder's ", cfg.max_tokens);
  const std::int64_t batch = 1;  // one prompt; CFG's null caption is the DiT's y_embedding
  const DType dtype = default_dtypes(spec, be.device()).text_encoder;
  PrefetchedRandomWeights weights(t5_parameters(cfg), a.seed);
  T5Encoder encoder(cfg, WeightLoader(weights, be, dtype));
  std::mt19937_64 rng(a.seed + 29);
  std::uniform_int_distribution<std::int32_t> token(2, static_cast<std::int32_t>(cfg.vocab - 1));
  std::vector<std::int32_t> ids(static_cast<std::size_t>(batch * len));
  for (auto& id : ids) id = token(rng);
  ids.back() = 1;  // </s>
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  Tensor ids_host = Tensor::empty_host({batch, len}, DType::i32);
  std::copy(ids.begin(), ids.end(), ids_host.data<std::int32_t>());
  const Tensor ids_dev = transfer(*host, ids_host, be);
  const Tensor lengths = transfer(*host, i32_host({static_cast<std::int32_t>(len)}), be);
  const double flops = t5_flops(cfg, batch, len);
  const Timed t = time_steps(be, a.warmup, a.steps, [&] { (void)encoder.encode(ids_dev, lengths); });
  nlohmann::json r = timing_json(t, flops, a.peak_tflops);
  r["name"] = "t5-encode-" + std::to_string(len);
  r["tokens"] = len;
  r["batch"] = batch;
  out["dtype"] = dtype_name(dtype);
  std::cerr << r["name"].get<std::string>() << ": " << r["ms"].get<double>() << " ms\n";
  out["rows"].push_back(r);
}

void run(const BenchArgs& a) {
  DITSERVE_CHECK(a.component == "dit" || a.component == "vae" || a.component == "t5",
                 "component: must be dit, vae or t5, got '", a.component, "'");
  DITSERVE_CHECK(a.steps >= 1, "steps: must be >= 1, got ", a.steps);
  DITSERVE_CHECK(a.warmup >= 0, "warmup: must be >= 0, got ", a.warmup);
  DITSERVE_CHECK(a.peak_tflops >= 0, "peak-tflops: must be >= 0, got ", a.peak_tflops);
  DITSERVE_CHECK(a.component == "dit" || (a.dump_dir.empty() && a.export_weights.empty()),
                 "dump-dir and export-weights apply to --component dit only");
  DITSERVE_CHECK(!a.cuda_graphs || (a.component == "dit" && !a.breakdown && a.dump_dir.empty()),
                 "cuda-graphs: applies to --component dit, without --breakdown or --dump-dir "
                 "(a replayed graph has no stage marks; the dump is of the eager forward)");
  const ModelSpec spec = find_model(a.model);
  if (a.component == "dit") (void)select_rows(a, spec);  // reject bad rows before any work
  const std::string device =
      a.device == "auto" ? (cuda_device_count() > 0 ? "cuda:0" : "cpu") : a.device;
  const std::unique_ptr<Backend> be = make_backend(Device::parse(device));

  nlohmann::json out;
  std::string command = "ditserve";
  for (const std::string& s : a.argv) command += " " + s;
  out["command"] = command;
  out["component"] = a.component;
  out["model"] = spec.name;
  out["device"] = be->device().str();
  out["warmup"] = a.warmup;
  out["cuda_graphs"] = a.cuda_graphs;
  out["steps"] = a.steps;
  out["timing"] = be->device().is_cpu() ? "host clock per step (median)"
                                        : "CUDA events around each step (median)";
  // The switches that select kernel paths (kernels/cuda: short_attention.cu, gemm_plan.h,
  // cudnn_graph.h), as this process saw them (null: unset, the default), so a result
  // says which paths it timed.
  nlohmann::json& switches = out["environment"];
  for (const char* name : {"DITSERVE_SHORT_KERNELS", "DITSERVE_GEMM_AUTOTUNE", "DITSERVE_CUDNN_AUTOTUNE"}) {
    const char* value = std::getenv(name);
    switches[name] = value != nullptr ? nlohmann::json(value) : nlohmann::json(nullptr);
  }
  if (a.peak_tflops > 0) out["peak_tflops"] = a.peak_tflops;
  out["rows"] = nlohmann::json::array();
  if (a.component == "dit") {
    spec.is_wan() ? bench_wan_dit(a, spec, *be, out) : bench_dit(a, spec, *be, out);
  } else if (a.component == "vae") {
    spec.is_wan() ? bench_wan_vae(a, spec, *be, out) : bench_vae(a, spec, *be, out);
  } else {
    bench_t5(a, spec, *be, out);
  }
  const std::string text = out.dump(2);
  if (a.json.empty()) {
    std::cout << text << "\n";
  } else {
    std::ofstream file(a.json);
    DITSERVE_CHECK(file.good(), "json: cannot write '", a.json, "'");
    file << text << "\n";
    std::cout << "wrote " << a.json << "\n";
  }
}

}  // namespace

void add_bench_command(CLI::App& app, int argc, char** argv) {
  auto args = std::make_shared<BenchArgs>();
  for (int i = 1; i < argc; ++i) args->argv.emplace_back(argv[i]);
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks on one device");
  bench->require_subcommand(1);
  CLI::App* cmd = bench->add_subcommand(
      "step", "Time one DiT denoising step (or a VAE decode, a T5 encode) with random weights");
  cmd->add_option("--component", args->component, "dit, vae or t5")->capture_default_str();
  cmd->add_option("--model", args->model,
                  "opensora-v1.2, tiny, wan2.1-t2v-1.3b, wan2.1-t2v-14b or tiny-wan")
      ->capture_default_str();
  cmd->add_option("--device", args->device, "auto, cpu or cuda:N")->capture_default_str();
  cmd->add_option("--rows", args->rows,
                  "dit rows: all, or Open-Sora's 144p-51f, 240p-51f, 360p-51f, 480p-51f, 720p-51f, "
                  "720p-102f, or Wan's 480p-81f, 720p-81f")
      ->delimiter(',');
  cmd->add_option("--latent", args->latent, "dit: one custom row of latent T,H,W");
  cmd->add_option("--warmup", args->warmup, "Untimed runs first")->capture_default_str();
  cmd->add_option("--steps", args->steps, "Timed runs (the median is reported)")->capture_default_str();
  cmd->add_option("--peak-tflops", args->peak_tflops,
                  "Measured matmul peak (TFLOP/s) for the fraction and the floor");
  cmd->add_option("--seed", args->seed, "Weights and inputs seed")->capture_default_str();
  cmd->add_option("--batch", args->batch, "dit: batch (2 = classifier-free guidance)")->capture_default_str();
  cmd->add_option("--caption-tokens", args->caption_tokens, "Caption / prompt tokens (default: the model's maximum)");
  cmd->add_option("--frames", args->frames, "vae: video frames (default 51, Wan 81; tiny 9, tiny-wan 5)");
  cmd->add_option("--size", args->size, "vae: WIDTHxHEIGHT (default 1280x720, Wan 832x480; tiny 32x32, tiny-wan 64x64)");
  cmd->add_flag("--breakdown", args->breakdown, "dit: one more step timed per stage");
  cmd->add_flag("--cuda-graphs", args->cuda_graphs,
                "dit: time the step replayed as a CUDA graph (GraphedTransformer: one eager call and "
                "the capture before --warmup; each timed step copies the inputs in, replays, copies "
                "the output out) and record its relative L2 difference from an eager step on the "
                "same inputs");
  cmd->add_option("--json", args->json, "Write the JSON here (default: stdout)");
  cmd->add_option("--dump-dir", args->dump_dir, "dit: write each row's inputs and output here");
  cmd->add_option("--export-weights", args->export_weights, "dit: write the weights (bf16) here");
  cmd->add_option("--param-specs", args->param_specs, "vae (Open-Sora): write the parameter specs (JSON) here");
  cmd->callback([args] { run(*args); });
}

}  // namespace ditserve::cli
