#pragma once
// What the parts of `ditserve bench step` share: the arguments, the named rows (latent
// sizes) of each model family, seeded host inputs, and device-timed repetitions.

#include <array>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/backend.h"
#include "kernels/copy.h"
#include "kernels/timing.h"
#include "models/registry.h"

namespace ditserve::cli {

struct BenchArgs {
  std::string component = "dit";
  std::string model = "opensora-v1.2";
  std::string device = "auto";
  std::vector<std::string> rows;
  std::string latent;  // "T,H,W": one custom row instead of the named ones
  int warmup = 1;
  int steps = 3;
  double peak_tflops = 0;
  std::uint64_t seed = 0;
  std::int64_t batch = 2;
  std::int64_t caption_tokens = 0;  // 0: the model's maximum
  std::int64_t frames = 0;          // vae: video frames (0: the family's default)
  std::string size;                 // vae: WIDTHxHEIGHT (0: the family's default)
  bool breakdown = false;
  bool cuda_graphs = false;
  std::string json;
  std::string dump_dir;
  std::string export_weights;
  std::string param_specs;
  std::vector<std::string> argv;  // for the JSON's "command"
};

// One DiT input size: the latent (T, H, W) of the model's VAE for a video size.
struct Row {
  std::string name;
  std::array<std::int64_t, 3> latent;
  std::int64_t height, width;  // pixels (STDiT3's size conditioning)
};

// Open-Sora 1.2 (issue 5's table): 144p..720p x 51 frames and 720p x 102 frames.
// Wan 2.1 (issue 10): 480p (832x480) and 720p (1280x720) x 81 frames.
const std::vector<Row>& named_rows(const ModelSpec& spec);
// --latent when given, else the --rows named (all by default). Throws InvalidArgument
// naming "latent" or "rows" (with the known names).
std::vector<Row> select_rows(const BenchArgs& a, const ModelSpec& spec);

Tensor random_host(const Shape& shape, std::mt19937_64& rng, double stddev = 1.0);
Tensor i32_host(const std::vector<std::int32_t>& values);
// The generator of a row's inputs: the same for the same (seed, row name).
std::mt19937_64 row_rng(const BenchArgs& a, const Row& row);
// A DiT evaluation's inputs, from host tensors to `be`; every sample's captions are
// `lengths` tokens long (lengths i32 [B] from i32_host).
DenoiseInputs upload_inputs(Backend& be, const Tensor& latents, const Tensor& timesteps,
                            const Tensor& captions, const Tensor& lengths);
double median(std::vector<double> v);
// WIDTHxHEIGHT; throws InvalidArgument naming "size".
std::array<std::int64_t, 2> parse_size(const std::string& text);

struct Timed {
  std::vector<double> ms;
  DeviceMemory memory;
};

// Runs `fn` warmup times, then `steps` times, each between two device stamps.
template <typename Fn>
Timed time_steps(Backend& be, int warmup, int steps, Fn&& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  be.synchronize();
  std::vector<std::unique_ptr<DeviceStamp>> stamps;
  stamps.push_back(record_stamp(be));
  for (int i = 0; i < steps; ++i) {
    fn();
    stamps.push_back(record_stamp(be));
  }
  Timed t;
  for (std::size_t i = 0; i < static_cast<std::size_t>(steps); ++i)
    t.ms.push_back(stamps[i + 1]->elapsed_ms_since(*stamps[i]));
  t.memory = device_memory(be);
  return t;
}

// ms (median), every ms, and with flops > 0 the TFLOP/s; with a peak, its fraction and
// the floor time; the device pool's high-water mark.
nlohmann::json timing_json(const Timed& t, double flops, double peak_tflops);

// One stage timeline of `fn` (kernels/timing.h) as {"breakdown_ms": {...}, "breakdown_total_ms"}.
template <typename Fn>
void add_breakdown(Backend& be, nlohmann::json& row, Fn&& fn) {
  Timeline timeline(be);
  {
    const ScopedTimeline active(timeline);
    timeline.start();
    fn();
    timeline.mark("final");
  }
  nlohmann::json parts;
  double total = 0;
  for (const auto& [label, ms] : timeline.totals_ms()) {
    parts[label] = ms;
    total += ms;
  }
  row["breakdown_ms"] = parts;
  row["breakdown_total_ms"] = total;
}

// One DiT row: times `forward` (which sets `output`), and returns the row's JSON (timing,
// tokens, the stage breakdown with --breakdown); with --dump-dir, writes `inputs` (host
// tensors) plus the output as DUMP_DIR/ROW.safetensors for an external reference.
template <typename Forward>
nlohmann::json time_dit_row(const BenchArgs& a, Backend& be, const Row& row,
                            const std::array<std::int64_t, 3>& grid, double flops,
                            NamedTensors inputs, DType dtype, const Tensor& output,
                            Forward&& forward) {
  const Timed t = time_steps(be, a.warmup, a.steps, forward);
  nlohmann::json r = timing_json(t, flops, a.peak_tflops);
  r["name"] = row.name;
  r["latent"] = {row.latent[0], row.latent[1], row.latent[2]};
  r["tokens"] = grid[0] * grid[1] * grid[2];
  r["pixels"] = {row.height, row.width};
  if (a.breakdown) add_breakdown(be, r, forward);
  if (!a.dump_dir.empty()) {
    std::filesystem::create_directories(a.dump_dir);
    const auto path = std::filesystem::path(a.dump_dir) / (row.name + ".safetensors");
    const std::unique_ptr<Backend> host = make_backend(Device::cpu());
    inputs.emplace_back("output", transfer(be, output, *host));
    write_safetensors(path, inputs, {{"row", row.name}, {"dtype", std::string(dtype_name(dtype))}});
    r["dump"] = path.string();
  }
  std::cerr << row.name << ": " << r["ms"].get<double>() << " ms/step, "
            << r["tflops"].get<double>() << " TFLOP/s\n";
  return r;
}

// One DiT row with --cuda-graphs: `model`'s forward through a GraphedTransformer on `be`,
// called once eagerly and once capturing before time_steps (its --warmup then --steps are
// replays). The row records "cuda_graphs": true, the capture counts and
// "graph_vs_eager_rel_l2", ||replayed - eager|| / ||eager|| for one more eager forward of
// the same inputs. A failed capture throws (a benchmark never times an eager fallback).
nlohmann::json time_graphed_dit_row(const BenchArgs& a, Backend& be, const Row& row,
                                    const std::array<std::int64_t, 3>& grid, double flops,
                                    DiffusionTransformer& model, const DenoiseInputs& inputs);

// One VAE decode row: random latents for `frames` video frames at width x height (a
// multiple of the VAE's factor, else InvalidArgument naming "size"), decoded --warmup then
// --steps times.
nlohmann::json time_vae_decode(const BenchArgs& a, Backend& be, VideoDecoder& vae, std::int64_t width,
                               std::int64_t height, std::int64_t frames);

// The Wan parts (bench_wan.cc).
void bench_wan_dit(const BenchArgs& a, const ModelSpec& spec, Backend& be, nlohmann::json& out);
void bench_wan_vae(const BenchArgs& a, const ModelSpec& spec, Backend& be, nlohmann::json& out);

}  // namespace ditserve::cli
