// ditserve bench step: times one denoising step of STDiT3 (or a VAE decode, or a T5
// encode) on one device with random weights generated in memory (no checkpoint is
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

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "io/safetensors.h"
#include "kernels/backend.h"
#include "kernels/copy.h"
#include "kernels/timing.h"
#include "models/registry.h"
#include "tensor/dtype.h"
#include "tensor/error.h"

namespace ditserve::cli {
namespace {

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
  std::int64_t frames = 0;          // vae: video frames (0: 51, or 9 for tiny)
  std::string size;                 // vae: WIDTHxHEIGHT (default 1280x720, or 32x32 for tiny)
  bool breakdown = false;
  std::string json;
  std::string dump_dir;
  std::string export_weights;
  std::string param_specs;
  std::vector<std::string> argv;  // for the JSON's "command"
};

// The table: latent (T, H, W) of the Open-Sora 1.2 VAE for each video size.
struct Row {
  std::string name;
  std::array<std::int64_t, 3> latent;
  std::int64_t height, width;  // pixels (the DiT's size conditioning)
};

const std::vector<Row>& named_rows() {
  static const std::vector<Row> rows = {
      {"144p-51f", {15, 18, 32}, 144, 256},   {"240p-51f", {15, 30, 54}, 240, 426},
      {"360p-51f", {15, 45, 80}, 360, 640},   {"480p-51f", {15, 60, 107}, 480, 854},
      {"720p-51f", {15, 90, 160}, 720, 1280}, {"720p-102f", {30, 90, 160}, 720, 1280}};
  return rows;
}

std::vector<Row> select_rows(const BenchArgs& a) {
  if (!a.latent.empty()) {
    std::vector<std::int64_t> v;
    std::stringstream ss(a.latent);
    std::string part;
    while (std::getline(ss, part, ',')) {
      std::size_t used = 0;
      std::int64_t n = 0;
      try {
        n = std::stoll(part, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != part.size() || n < 1)
        throw InvalidArgument("latent: expected T,H,W of positive integers, got '" + a.latent + "'");
      v.push_back(n);
    }
    if (v.size() != 3)
      throw InvalidArgument("latent: expected T,H,W of positive integers, got '" + a.latent + "'");
    return {{std::to_string(v[0]) + "x" + std::to_string(v[1]) + "x" + std::to_string(v[2]),
             {v[0], v[1], v[2]}, v[1] * 8, v[2] * 8}};
  }
  if (a.rows.empty() || (a.rows.size() == 1 && a.rows[0] == "all")) return named_rows();
  std::vector<Row> out;
  for (const std::string& name : a.rows) {
    const auto& all = named_rows();
    const auto it = std::find_if(all.begin(), all.end(), [&](const Row& r) { return r.name == name; });
    if (it == all.end()) {
      std::string known;
      for (const Row& r : all) known += (known.empty() ? "" : ", ") + r.name;
      throw InvalidArgument("rows: unknown row '" + name + "'; known: all, " + known);
    }
    out.push_back(*it);
  }
  return out;
}

// Seeded random weights generated once, by all cores in parallel (tensor values depend
// only on (seed, name), so the order does not matter), then handed out and dropped.
class PrefetchedWeights final : public WeightSource {
 public:
  PrefetchedWeights(const std::vector<ParamSpec>& specs, std::uint64_t seed)
      : inner_(random_weights(specs, seed)), specs_(specs), tensors_(specs.size()) {
    std::atomic<std::size_t> next{0};
    const unsigned threads = std::max(1u, std::min(32u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    std::mutex error_mutex;
    std::string error;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        for (std::size_t i = next++; i < specs_.size(); i = next++) {
          try {
            tensors_[i] = inner_->get(specs_[i].name, specs_[i].shape);
          } catch (const std::exception& e) {
            const std::lock_guard<std::mutex> lock(error_mutex);
            error = e.what();
          }
        }
      });
    }
    for (std::thread& t : pool) t.join();
    if (!error.empty()) throw Error(error);
    for (std::size_t i = 0; i < specs_.size(); ++i) index_[specs_[i].name] = i;
  }

  bool contains(const std::string& name) const override { return inner_->contains(name); }
  Tensor get(const std::string& name, const Shape& expected) const override {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto it = index_.find(name);
    if (it == index_.end() || !tensors_[it->second].defined() ||
        tensors_[it->second].shape() != expected)
      return inner_->get(name, expected);
    Tensor t = std::move(tensors_[it->second]);  // each tensor is loaded once
    return t;
  }
  std::string describe() const override { return "random weights (" + inner_->describe() + ")"; }

  // The tensors not yet handed out, rounded to bf16, as a sharded safetensors checkpoint.
  void export_bf16(const std::filesystem::path& dir) const {
    NamedTensors named;
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      const Tensor& f = tensors_[i];
      DITSERVE_CHECK(f.defined(), "export-weights: ", specs_[i].name, " was already loaded");
      const std::vector<float> values = f.to_vector_f32();
      Tensor b = Tensor::empty_host(f.shape(), DType::bf16);
      auto* out = b.data<std::uint16_t>();
      for (std::size_t j = 0; j < values.size(); ++j) out[j] = f32_to_bf16(values[j]);
      named.emplace_back(specs_[i].name, std::move(b));
    }
    write_sharded_checkpoint(dir, named, std::uint64_t{2} << 30,
                             {{"format", "pt"}, {"source", "ditserve bench step"}});
  }

 private:
  std::unique_ptr<WeightSource> inner_;
  std::vector<ParamSpec> specs_;
  mutable std::vector<Tensor> tensors_;
  std::map<std::string, std::size_t> index_;
  mutable std::mutex mutex_;
};

Tensor random_host(const Shape& shape, std::mt19937_64& rng, double stddev = 1.0) {
  std::normal_distribution<float> normal(0.0f, static_cast<float>(stddev));
  std::vector<float> v(static_cast<std::size_t>(shape_numel(shape)));
  for (float& x : v) x = normal(rng);
  return Tensor::from_vector(v, shape);
}

Tensor i32_host(const std::vector<std::int32_t>& values) {
  Tensor t = Tensor::empty_host({static_cast<std::int64_t>(values.size())}, DType::i32);
  std::copy(values.begin(), values.end(), t.data<std::int32_t>());
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

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
  for (int i = 0; i < steps; ++i)
    t.ms.push_back(stamps[static_cast<std::size_t>(i) + 1]->elapsed_ms_since(*stamps[static_cast<std::size_t>(i)]));
  t.memory = device_memory(be);
  return t;
}

nlohmann::json timing_json(const Timed& t, double flops, double peak_tflops) {
  nlohmann::json j;
  const double ms = median(t.ms);
  j["ms"] = ms;
  j["ms_all"] = t.ms;
  if (flops > 0) {
    j["flop"] = flops;
    j["tflops"] = flops / (ms * 1e-3) / 1e12;
    if (peak_tflops > 0) {
      j["peak_fraction"] = flops / (ms * 1e-3) / (peak_tflops * 1e12);
      j["floor_ms"] = flops / (peak_tflops * 1e12) * 1e3;
    }
  }
  j["pool_high_water_mib"] = static_cast<double>(t.memory.reserved_high_bytes) / (1 << 20);
  return j;
}

void bench_dit(const BenchArgs& a, const ModelSpec& spec, Backend& be, nlohmann::json& out) {
  const STDiT3Config& cfg = spec.transformer;
  const std::vector<Row> rows = select_rows(a);
  const std::int64_t len = a.caption_tokens > 0 ? a.caption_tokens : cfg.model_max_length;
  DITSERVE_CHECK(len <= cfg.model_max_length, "caption-tokens: ", len, " exceeds the model's ",
                 cfg.model_max_length);
  DITSERVE_CHECK(a.batch >= 1, "batch: must be >= 1, got ", a.batch);
  const DType dtype = default_dtypes(be.device()).transformer;
  PrefetchedWeights weights(stdit3_parameters(cfg), a.seed);
  if (!a.export_weights.empty()) weights.export_bf16(a.export_weights);
  STDiT3 model(cfg, WeightLoader(weights, be, dtype));
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());

  out["dtype"] = dtype_name(dtype);
  out["batch"] = a.batch;
  out["caption_tokens"] = len;
  out["flop_formula"] =
      "B*(depth*(2*(2N(6C^2+2CF)+4LC^2) + 4NSC + 4NTC + 8NLC) + 2L(cc*C+C^2) + "
      "2NC(in+out)*patch), N=T*S tokens, F=mlp hidden, L caption tokens, cc caption channels";
  for (const Row& row : rows) {
    std::mt19937_64 rng(a.seed * 1000003 + std::hash<std::string>{}(row.name) % 1000003);
    const auto& lt = row.latent;
    const Tensor latents = random_host({a.batch, cfg.in_channels, lt[0], lt[1], lt[2]}, rng);
    const Tensor timesteps = Tensor::from_vector(std::vector<float>(static_cast<std::size_t>(a.batch), 500.0f), {a.batch});
    const Tensor captions = random_host({a.batch, len, cfg.caption_channels}, rng, 0.2);
    const Tensor lengths = i32_host(std::vector<std::int32_t>(static_cast<std::size_t>(a.batch),
                                                              static_cast<std::int32_t>(len)));
    DenoiseInputs in;
    in.latents = transfer(*host, latents, be);
    in.timesteps = transfer(*host, timesteps, be);
    in.captions = transfer(*host, captions, be);
    in.caption_lengths = transfer(*host, lengths, be);
    in.fps = 24.0f;
    in.height = row.height;
    in.width = row.width;

    std::array<std::int64_t, 3> grid{};
    for (int i = 0; i < 3; ++i) grid[i] = (lt[i] + cfg.patch_size[i] - 1) / cfg.patch_size[i];
    const double flops = stdit3_step_flops(cfg, a.batch, len, grid);
    Tensor output;
    const Timed t = time_steps(be, a.warmup, a.steps, [&] { output = model.forward_full(in); });

    nlohmann::json r = timing_json(t, flops, a.peak_tflops);
    r["name"] = row.name;
    r["latent"] = {lt[0], lt[1], lt[2]};
    r["tokens"] = grid[0] * grid[1] * grid[2];
    r["pixels"] = {row.height, row.width};
    if (a.breakdown) {
      Timeline timeline(be);
      {
        const ScopedTimeline active(timeline);
        timeline.start();
        output = model.forward_full(in);
        timeline.mark("final");
      }
      nlohmann::json parts;
      double total = 0;
      for (const auto& [label, ms] : timeline.totals_ms()) {
        parts[label] = ms;
        total += ms;
      }
      r["breakdown_ms"] = parts;
      r["breakdown_total_ms"] = total;
    }
    if (!a.dump_dir.empty()) {
      std::filesystem::create_directories(a.dump_dir);
      const Tensor host_out = transfer(be, output, *host);
      write_safetensors(std::filesystem::path(a.dump_dir) / (row.name + ".safetensors"),
                        {{"latents", latents},
                         {"timesteps", timesteps},
                         {"captions", captions},
                         {"caption_lengths", lengths},
                         {"fps", Tensor::from_vector({in.fps}, {1})},
                         {"height", Tensor::from_vector({static_cast<float>(row.height)}, {1})},
                         {"width", Tensor::from_vector({static_cast<float>(row.width)}, {1})},
                         {"output", host_out}},
                        {{"row", row.name}, {"dtype", std::string(dtype_name(dtype))}});
      r["dump"] = (std::filesystem::path(a.dump_dir) / (row.name + ".safetensors")).string();
    }
    std::cerr << row.name << ": " << r["ms"].get<double>() << " ms/step, "
              << r["tflops"].get<double>() << " TFLOP/s\n";
    out["rows"].push_back(r);
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
  std::int64_t width = tiny ? 32 : 1280, height = tiny ? 32 : 720;
  if (!a.size.empty()) {
    const auto x = a.size.find('x');
    try {
      if (x == std::string::npos) throw std::invalid_argument("no x");
      width = std::stoll(a.size.substr(0, x));
      height = std::stoll(a.size.substr(x + 1));
    } catch (const std::exception&) {
      throw InvalidArgument("size: expected WIDTHxHEIGHT such as 1280x720, got '" + a.size + "'");
    }
  }
  const std::vector<ParamSpec> specs = opensora_vae_decoder_parameters(spec.vae);
  if (!a.param_specs.empty()) write_param_specs(a.param_specs, specs);
  const DType dtype = default_dtypes(be.device()).vae;
  PrefetchedWeights weights(specs, a.seed);
  OpenSoraVAE vae(spec.vae, weights, be, dtype);
  const std::int64_t f = vae.spatial_factor();
  DITSERVE_CHECK(width % f == 0 && height % f == 0, "size: ", width, "x", height,
                 " must be a multiple of ", f);
  std::mt19937_64 rng(a.seed + 17);
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const Tensor z = transfer(
      *host, random_host({1, vae.latent_channels(), vae.latent_frames(frames), height / f, width / f}, rng), be);
  const Timed t = time_steps(be, a.warmup, a.steps, [&] { (void)vae.decode(z, frames); });
  nlohmann::json r = timing_json(t, 0, 0);
  r["name"] = "vae-decode-" + std::to_string(height) + "p-" + std::to_string(frames) + "f";
  r["latent"] = z.shape();
  r["frames"] = frames;
  r["pixels"] = {height, width};
  out["dtype"] = dtype_name(dtype);
  std::cerr << r["name"].get<std::string>() << ": " << r["ms"].get<double>() << " ms\n";
  out["rows"].push_back(r);
}

void bench_t5(const BenchArgs& a, const ModelSpec& spec, Backend& be, nlohmann::json& out) {
  const T5Config& cfg = spec.text_encoder;
  const std::int64_t len = a.caption_tokens > 0 ? a.caption_tokens : cfg.max_tokens;
  DITSERVE_CHECK(len <= cfg.max_tokens, "caption-tokens: ", len, " exceeds the encoder's ", cfg.max_tokens);
  const std::int64_t batch = 1;  // one prompt; CFG's null caption is the DiT's y_embedding
  const DType dtype = default_dtypes(be.device()).text_encoder;
  PrefetchedWeights weights(t5_parameters(cfg), a.seed);
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
  const ModelSpec spec = find_model(a.model);
  if (a.component == "dit") (void)select_rows(a);  // reject bad rows before any work
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
  out["steps"] = a.steps;
  out["timing"] = be->device().is_cpu() ? "host clock per step (median)"
                                        : "CUDA events around each step (median)";
  if (a.peak_tflops > 0) out["peak_tflops"] = a.peak_tflops;
  out["rows"] = nlohmann::json::array();
  if (a.component == "dit") {
    bench_dit(a, spec, *be, out);
  } else if (a.component == "vae") {
    bench_vae(a, spec, *be, out);
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
  cmd->add_option("--model", args->model, "opensora-v1.2 or tiny")->capture_default_str();
  cmd->add_option("--device", args->device, "auto, cpu or cuda:N")->capture_default_str();
  cmd->add_option("--rows", args->rows,
                  "dit rows: all, 144p-51f, 240p-51f, 360p-51f, 480p-51f, 720p-51f, 720p-102f")
      ->delimiter(',');
  cmd->add_option("--latent", args->latent, "dit: one custom row of latent T,H,W");
  cmd->add_option("--warmup", args->warmup, "Untimed runs first")->capture_default_str();
  cmd->add_option("--steps", args->steps, "Timed runs (the median is reported)")->capture_default_str();
  cmd->add_option("--peak-tflops", args->peak_tflops,
                  "Measured matmul peak (TFLOP/s) for the fraction and the floor");
  cmd->add_option("--seed", args->seed, "Weights and inputs seed")->capture_default_str();
  cmd->add_option("--batch", args->batch, "dit: batch (2 = classifier-free guidance)")->capture_default_str();
  cmd->add_option("--caption-tokens", args->caption_tokens, "Caption / prompt tokens (default: the model's maximum)");
  cmd->add_option("--frames", args->frames, "vae: video frames (default 51; tiny 9)");
  cmd->add_option("--size", args->size, "vae: WIDTHxHEIGHT (default 1280x720; tiny 32x32)");
  cmd->add_flag("--breakdown", args->breakdown, "dit: one more step timed per stage");
  cmd->add_option("--json", args->json, "Write the JSON here (default: stdout)");
  cmd->add_option("--dump-dir", args->dump_dir, "dit: write each row's inputs and output here");
  cmd->add_option("--export-weights", args->export_weights, "dit: write the weights (bf16) here");
  cmd->add_option("--param-specs", args->param_specs, "vae: write the parameter specs (JSON) here");
  cmd->callback([args] { run(*args); });
}

}  // namespace ditserve::cli
