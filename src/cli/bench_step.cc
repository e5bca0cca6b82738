#include "cli/bench_step.h"

#include <algorithm>
#include <functional>
#include <sstream>

#include "cli/relative_error.h"
#include "models/graphed_transformer.h"
#include "tensor/error.h"

namespace ditserve::cli {

const std::vector<Row>& named_rows(const ModelSpec& spec) {
  static const std::vector<Row> opensora = {
      {"144p-51f", {15, 18, 32}, 144, 256},   {"240p-51f", {15, 30, 54}, 240, 426},
      {"360p-51f", {15, 45, 80}, 360, 640},   {"480p-51f", {15, 60, 107}, 480, 854},
      {"720p-51f", {15, 90, 160}, 720, 1280}, {"720p-102f", {30, 90, 160}, 720, 1280}};
  // Wan's VAE: 1 + (frames - 1) / 4 latent frames, 8x spatial.
  static const std::vector<Row> wan = {{"480p-81f", {21, 60, 104}, 480, 832},
                                       {"720p-81f", {21, 90, 160}, 720, 1280}};
  return spec.is_wan() ? wan : opensora;
}

std::vector<Row> select_rows(const BenchArgs& a, const ModelSpec& spec) {
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
  if (a.rows.empty() || (a.rows.size() == 1 && a.rows[0] == "all")) return named_rows(spec);
  std::vector<Row> out;
  for (const std::string& name : a.rows) {
    const auto& all = named_rows(spec);
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

Tensor random_host(const Shape& shape, std::mt19937_64& rng, double stddev) {
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

std::mt19937_64 row_rng(const BenchArgs& a, const Row& row) {
  return std::mt19937_64(a.seed * 1000003 + std::hash<std::string>{}(row.name) % 1000003);
}

DenoiseInputs upload_inputs(Backend& be, const Tensor& latents, const Tensor& timesteps,
                            const Tensor& captions, const Tensor& lengths) {
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  DenoiseInputs in;
  in.latents = transfer(*host, latents, be);
  in.timesteps = transfer(*host, timesteps, be);
  in.captions = transfer(*host, captions, be);
  in.caption_lengths = transfer(*host, lengths, be);
  return in;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

std::array<std::int64_t, 2> parse_size(const std::string& text) {
  const auto x = text.find('x');
  try {
    if (x == std::string::npos) throw std::invalid_argument("no x");
    std::size_t used_w = 0, used_h = 0;
    const std::string w = text.substr(0, x), h = text.substr(x + 1);
    const std::int64_t width = std::stoll(w, &used_w), height = std::stoll(h, &used_h);
    if (used_w != w.size() || used_h != h.size() || width < 1 || height < 1)
      throw std::invalid_argument("not positive integers");
    return {width, height};
  } catch (const std::exception&) {
    throw InvalidArgument("size: expected WIDTHxHEIGHT such as 1280x720, got '" + text + "'");
  }
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

nlohmann::json time_graphed_dit_row(const BenchArgs& a, Backend& be, const Row& row,
                                    const std::array<std::int64_t, 3>& grid, double flops,
                                    DiffusionTransformer& model, const DenoiseInputs& inputs) {
  GraphedTransformer graphed(model, be);  // a failed capture throws
  (void)graphed.forward(inputs);          // eager: plans, autotuning, tables, workspace
  const Tensor replayed = graphed.forward(inputs);  // captured, then replayed
  const Tensor eager = model.forward(inputs);
  const double rel_l2 = relative_l2(host_values(be, replayed), host_values(be, eager));
  Tensor output;
  const Timed t = time_steps(be, a.warmup, a.steps, [&] { output = graphed.forward(inputs); });
  nlohmann::json r = timing_json(t, flops, a.peak_tflops);
  r["name"] = row.name;
  r["latent"] = {row.latent[0], row.latent[1], row.latent[2]};
  r["tokens"] = grid[0] * grid[1] * grid[2];
  r["pixels"] = {row.height, row.width};
  r["cuda_graphs"] = true;
  r["graph_vs_eager_rel_l2"] = rel_l2;
  r["graph_captures"] = graphed.stats().captures;
  r["graph_replays"] = graphed.stats().replays;
  std::cerr << row.name << ": " << r["ms"].get<double>() << " ms/step replayed, "
            << r["tflops"].get<double>() << " TFLOP/s, rel L2 vs eager " << rel_l2 << "\n";
  return r;
}

nlohmann::json time_vae_decode(const BenchArgs& a, Backend& be, VideoDecoder& vae, std::int64_t width,
                               std::int64_t height, std::int64_t frames) {
  const std::int64_t f = vae.spatial_factor();
  DITSERVE_CHECK(width % f == 0 && height % f == 0, "size: ", width, "x", height,
                 " must be a multiple of ", f);
  std::mt19937_64 rng(a.seed + 17);
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const Tensor z = transfer(
      *host, random_host({1, vae.latent_channels(), vae.latent_frames(frames), height / f, width / f}, rng),
      be);
  const Timed t = time_steps(be, a.warmup, a.steps, [&] { (void)vae.decode(z, frames); });
  nlohmann::json r = timing_json(t, 0, 0);
  r["name"] = "vae-decode-" + std::to_string(height) + "p-" + std::to_string(frames) + "f";
  r["latent"] = z.shape();
  r["frames"] = frames;
  r["pixels"] = {height, width};
  std::cerr << r["name"].get<std::string>() << ": " << r["ms"].get<double>() << " ms\n";
  return r;
}

}  // namespace ditserve::cli
