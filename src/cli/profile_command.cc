// ditserve profile: measures, on the devices given, what the scheduler needs to know about
// one model (sched/profile.h, docs/SCHEDULING.md), each through the runtime's own code: the
// denoising step time of every (shape, DoP) (runtime::group_step: STDiT3 frame/position
// parallel, Wan Ulysses, the guidance branches apart on an even DoP), the decode time per
// DoP (runtime::group_decode: the patch-parallel VAE and the video's copy to the host), the
// text-encode time and the cost of moving a request's state between devices. Each DoP's
// latents after its steps are compared with DoP 1's (a wrong parallel path shows there).
// Each figure is the median of --steps-timed runs after --warmup untimed ones. The JSON it
// writes is the one `ditserve simulate --profile` reads.
// --random-weights SEED times a full-size model on seeded random weights generated in
// memory (as `generate --random-weights`), so a GPU machine needs no checkpoint.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/relative_error.h"
#include "comm/fabric.h"
#include "kernels/backend.h"
#include "kernels/copy.h"
#include "models/opensora_vae.h"
#include "models/stdit3.h"
#include "models/wan_transformer.h"
#include "models/wan_vae.h"
#include "pipeline/pipeline.h"
#include "runtime/group_decode.h"
#include "runtime/group_step.h"
#include "sched/profile.h"
#include "tensor/error.h"

namespace ditserve::cli {
namespace {

struct ProfileArgs {
  std::string model = "tiny";
  std::string devices;
  std::string weights;
  std::optional<std::uint64_t> random_weights;  // seed
  std::string shapes = "144p:51";
  std::string dops = "1";
  int steps_timed = 3;
  int warmup = 1;
  std::string out;
  std::string hardware;
};

struct ShapeSpec {
  std::string name;
  std::int64_t height = 0, width = 0, frames = 0;  // what the profile calls the shape
  std::int64_t run_height = 0, run_width = 0;      // rounded to the model's size multiple
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::int64_t parse_count(const std::string& text, const std::string& flag,
                         const std::string& item) {
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < 1)
    throw InvalidArgument(flag + ": expected a positive integer in '" + item + "', got '" + text +
                          "'");
  return v;
}

// Open-Sora's 16:9 resolutions by name (opensora/datasets/aspect.py).
bool named_resolution(const std::string& name, std::int64_t* h, std::int64_t* w) {
  static const std::vector<std::tuple<std::string, std::int64_t, std::int64_t>> table = {
      {"144p", 144, 256}, {"240p", 240, 426},  {"360p", 360, 640},
      {"480p", 480, 854}, {"720p", 720, 1280}, {"1080p", 1080, 1920}};
  for (const auto& [n, hh, ww] : table) {
    if (n == name) {
      *h = hh;
      *w = ww;
      return true;
    }
  }
  return false;
}

std::int64_t round_up(std::int64_t v, std::int64_t m) { return (v + m - 1) / m * m; }

// "144p:51" or "WxH:frames" (frames default 1 for WxH, `named_frames` for named
// resolutions: 51 for Open-Sora, 81 for Wan).
std::vector<ShapeSpec> parse_shapes(const std::string& text, std::int64_t multiple,
                                    std::int64_t named_frames) {
  std::vector<ShapeSpec> out;
  const std::vector<std::string> items = split(text);
  if (items.empty())
    throw InvalidArgument("--shapes: no shape given (e.g. 144p:51,240p:51 or 64x64:5)");
  for (const std::string& item : items) {
    const auto colon = item.find(':');
    const std::string size = item.substr(0, colon);
    ShapeSpec s;
    s.frames =
        colon == std::string::npos ? 0 : parse_count(item.substr(colon + 1), "--shapes", item);
    if (named_resolution(size, &s.height, &s.width)) {
      if (s.frames == 0) s.frames = named_frames;
      s.name = size;
    } else {
      const auto x = size.find('x');
      if (x == std::string::npos || x == 0) {
        throw InvalidArgument("--shapes: '" + item +
                              "' is neither a resolution (144p, 240p, 360p, "
                              "480p, 720p, 1080p) nor WIDTHxHEIGHT, optionally with :FRAMES");
      }
      s.width = parse_count(size.substr(0, x), "--shapes", item);
      s.height = parse_count(size.substr(x + 1), "--shapes", item);
      if (s.frames == 0) s.frames = 1;
      s.name = size;
    }
    for (const ShapeSpec& other : out) {
      if (other.name == s.name) s.name += "-" + std::to_string(s.frames) + "f";
    }
    for (const ShapeSpec& other : out) {
      if (other.name == s.name) throw InvalidArgument("--shapes: '" + item + "' is given twice");
    }
    s.run_height = round_up(s.height, multiple);
    s.run_width = round_up(s.width, multiple);
    out.push_back(s);
  }
  return out;
}

std::vector<int> parse_dops(const std::string& text, int devices) {
  std::vector<int> out;
  for (const std::string& item : split(text)) {
    const std::int64_t d = parse_count(item, "--dop", item);
    if (d > devices) {
      throw InvalidArgument("--dop: " + item + " exceeds the " + std::to_string(devices) +
                            " devices given by --devices");
    }
    if (std::find(out.begin(), out.end(), static_cast<int>(d)) == out.end())
      out.push_back(static_cast<int>(d));
  }
  if (out.empty()) throw InvalidArgument("--dop: no degree of parallelism given (e.g. 1,2,4)");
  std::sort(out.begin(), out.end());
  if (out.front() != 1) throw InvalidArgument("--dop: 1 is required (the profile's solo latency)");
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median seconds of `timed` runs of fn after `warmup` untimed ones; `sync` waits for the
// devices before the clock is read.
double measure(int warmup, int timed, const std::function<void()>& fn,
               const std::function<void()>& sync) {
  for (int i = 0; i < warmup; ++i) fn();
  sync();
  std::vector<double> seconds;
  for (int i = 0; i < timed; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    sync();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return median(seconds);
}

DeviceGroup first_ranks(int k) {
  DeviceGroup g;
  for (int r = 0; r < k; ++r) g.ranks.push_back(r);
  return g;
}

void run(const ProfileArgs& a) {
  ModelSpec spec = find_model(a.model);
  if (a.random_weights) {
    if (!a.weights.empty())
      throw InvalidArgument(
          "--random-weights: give either --weights or --random-weights, not both");
    // As `generate --random-weights`: the model's weights (and the built-in tokenizer)
    // come from this seed, generated in memory; timings need no checkpoint on disk.
    spec.builtin_seed = *a.random_weights;
  }
  const std::vector<std::string> device_names = split(a.devices);
  if (device_names.empty()) throw InvalidArgument("--devices: no device given (e.g. cpu:0,cpu:1)");
  std::vector<Device> devices;
  for (const std::string& name : device_names) {
    try {
      devices.push_back(Device::parse(name));
    } catch (const Error& e) {
      throw InvalidArgument("--devices: '" + name + "': " + e.what());
    }
    for (std::size_t j = 0; j + 1 < devices.size(); ++j) {
      if (devices[j] == devices.back())
        throw InvalidArgument("--devices: " + name + " is given twice");
    }
  }
  const int n = static_cast<int>(devices.size());
  const std::vector<int> dops = parse_dops(a.dops, n);
  const std::vector<ShapeSpec> shapes =
      parse_shapes(a.shapes, spec.size_multiple(), spec.is_wan() ? 81 : 51);
  if (a.steps_timed < 1)
    throw InvalidArgument("--steps-timed: must be >= 1, got " + std::to_string(a.steps_timed));
  if (a.warmup < 0)
    throw InvalidArgument("--warmup: must be >= 0, got " + std::to_string(a.warmup));
  if (a.out.empty()) throw InvalidArgument("--out: no output file given");
  const std::filesystem::path out_path = a.out;
  const std::filesystem::path out_dir = out_path.has_parent_path() ? out_path.parent_path() : ".";
  if (!std::filesystem::is_directory(out_dir))
    throw InvalidArgument("--out: directory '" + out_dir.string() + "' does not exist");
  std::optional<std::filesystem::path> weights;
  if (!a.weights.empty()) weights = a.weights;
  require_weights(spec, weights);
  for (const ShapeSpec& s : shapes) {
    GenerateRequest r;
    r.height = s.run_height;
    r.width = s.run_width;
    r.frames = s.frames;
    try {
      validate_request(spec, r);
    } catch (const InvalidArgument& e) {
      throw InvalidArgument("--shapes: " + s.name + ": " + e.what());
    }
    // Printed before the (slow) load, so a log shows what each shape runs as.
    std::fprintf(stderr, "profile: %s runs at %lldx%lld, %lld frames -> %lld latent frames\n",
                 s.name.c_str(), static_cast<long long>(s.run_width),
                 static_cast<long long>(s.run_height), static_cast<long long>(s.frames),
                 static_cast<long long>(spec.latent_frames(s.frames)));
  }

  // Devices and models: every device that some DoP uses holds a replica of the model.
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<Backend*> raw;
  for (const Device& d : devices) {
    backends.push_back(make_backend(d));
    raw.push_back(backends.back().get());
  }
  Fabric fabric(raw);
  const auto sync_all = [&] {
    for (const auto& be : backends) be->synchronize();
  };
  std::fprintf(stderr, "profile: loading %s on %d device(s)\n", spec.name.c_str(), dops.back());
  Pipeline pipeline(spec, *backends[0], weights);
  // Ranks 1.. of the largest DoP, each with the whole model, as the runtime's devices.
  std::vector<std::unique_ptr<Pipeline>> replicas;
  std::vector<Pipeline*> pipelines = {&pipeline};
  // Member r's DiT (its replica on rank r): STDiT3 for Open-Sora, WanTransformer for Wan.
  std::vector<DiffusionTransformer*> members = {&pipeline.transformer()};
  for (int r = 1; r < dops.back(); ++r) {
    replicas.push_back(std::make_unique<Pipeline>(spec, *backends[static_cast<std::size_t>(r)], weights));
    pipelines.push_back(replicas.back().get());
    members.push_back(&replicas.back()->transformer());
  }
  std::vector<STDiT3*> dits;
  std::vector<WanTransformer*> wan_dits;
  for (DiffusionTransformer* m : members) {
    dits.push_back(dynamic_cast<STDiT3*>(m));
    wan_dits.push_back(dynamic_cast<WanTransformer*>(m));
  }
  auto* vae = dynamic_cast<OpenSoraVAE*>(&pipeline.vae());
  auto* wan_vae = dynamic_cast<WanVAE*>(&pipeline.vae());
  for (std::size_t i = 0; i < members.size(); ++i) {
    const bool opensora = dits[i] != nullptr && vae != nullptr;
    const bool wan = wan_dits[i] != nullptr && wan_vae != nullptr;
    if (!opensora && !wan) {
      throw InvalidArgument("--model: " + spec.name +
                            " is neither an STDiT3 + Open-Sora VAE nor a Wan DiT + Wan VAE model");
    }
  }
  const std::string prompt = "a red paper boat drifts down a rain-filled street at dusk";
  std::optional<Captions> captions;
  const double encode_s = measure(
      a.warmup, a.steps_timed, [&] { captions = pipeline.encode(prompt); }, sync_all);
  std::fprintf(stderr, "profile: encode %.3f ms\n", encode_s * 1e3);

  sched::Profile profile;
  profile.model = spec.name;
  profile.hardware = !a.hardware.empty() ? a.hardware
                                         : a.devices + " (ditserve profile, median of " +
                                               std::to_string(a.steps_timed) + ")";
  for (const ShapeSpec& s : shapes) {
    GenerateRequest request;
    request.prompt = prompt;
    request.height = s.run_height;
    request.width = s.run_width;
    request.frames = s.frames;
    request.steps = a.warmup + a.steps_timed + 1;  // each DoP steps its own copy of the state
    request.seed = 7;
    const GenerationState start = pipeline.start(request, *captions);
    sched::ShapeProfile sp;
    sp.name = s.name;
    sp.height = static_cast<int>(s.height);
    sp.width = static_cast<int>(s.width);
    sp.frames = static_cast<int>(s.frames);
    sp.encode_s = encode_s;

    std::vector<float> one_device;  // DoP 1's latents after its steps, for the others to match
    for (const int dop : dops) {
      const DeviceGroup group = first_ranks(dop);
      // The runtime's group step: on k members STDiT3 runs frame/position parallel and Wan
      // Ulysses, each with the guidance branches on the two halves of an even group.
      GenerationState state = pipeline.start(request, *captions);
      std::vector<DiffusionTransformer*> group_members;
      for (const int r : group.ranks) group_members.push_back(members[static_cast<std::size_t>(r)]);
      sp.step_s[dop] = measure(
          a.warmup, a.steps_timed,
          [&] { runtime::group_step(fabric, group, group_members, state); }, sync_all);
      std::fprintf(stderr, "profile: %s step DoP %d: %.3f ms\n", s.name.c_str(), dop,
                   sp.step_s[dop] * 1e3);
      // Every DoP ran the same steps from the same state: a wrong parallel path shows here.
      const std::vector<float> latents = host_values(*backends[0], state.latents());
      if (dop == 1) {
        one_device = latents;
      } else {
        std::fprintf(stderr, "profile: %s DoP %d vs DoP 1 after %d steps: rel. error %.3g\n",
                     s.name.c_str(), dop, a.warmup + a.steps_timed,
                     relative_l2(latents, one_device));
      }
    }

    // The runtime's decode (runtime::group_decode): the patch-parallel VAE over the group,
    // each member with the VAE it loaded, and the video copied to the host.
    const GenerationState finished(start.latents(), start.captions(), start.caption_lengths(),
                                   start.options(), start.num_steps());
    for (const int dop : dops) {
      if (finished.latents().size(3) < dop) {
        std::fprintf(stderr, "profile: %s decode DoP %d skipped (%lld latent rows)\n",
                     s.name.c_str(), dop, static_cast<long long>(finished.latents().size(3)));
        continue;
      }
      const DeviceGroup group = first_ranks(dop);
      const std::vector<Pipeline*> decoders(pipelines.begin(), pipelines.begin() + dop);
      sp.decode_s[dop] = measure(
          a.warmup, a.steps_timed,
          [&] { runtime::group_decode(fabric, group, decoders, finished); }, sync_all);
      std::fprintf(stderr, "profile: %s decode DoP %d: %.3f ms\n", s.name.c_str(), dop,
                   sp.decode_s[dop] * 1e3);
    }

    // A whole request (latents and captions; Wan: the sampler history too) between two
    // disjoint one-device groups, as the runtime moves it.
    if (n >= 2) {
      bool on_first = true;
      GenerationState whole = pipeline.start(request, *captions);
      const auto move = [&] {
        whole.move_to(*backends[on_first ? 0 : 1], *backends[on_first ? 1 : 0]);
        on_first = !on_first;
      };
      sp.move_s = measure(a.warmup, a.steps_timed, move, sync_all);
      std::fprintf(stderr, "profile: %s move %s -> %s: %.3f ms\n", s.name.c_str(),
                   device_names[0].c_str(), device_names[1].c_str(), sp.move_s * 1e3);
    }
    profile.shapes.push_back(sp);
  }

  std::ofstream file(out_path);
  file << sched::profile_to_json(profile).dump(2) << "\n";
  file.close();
  if (!file) throw Error("--out: cannot write '" + out_path.string() + "'");
  std::printf("wrote %s: %zu shapes, DoP", out_path.c_str(), profile.shapes.size());
  for (const int d : dops) std::printf(" %d", d);
  std::printf(" on %s\n", a.devices.c_str());
}

}  // namespace

void add_profile_command(CLI::App& app) {
  auto args = std::make_shared<ProfileArgs>();
  CLI::App* cmd = app.add_subcommand(
      "profile",
      "Measure step, decode, encode and move times per shape and DoP (scheduler profile JSON)");
  cmd->add_option("--model", args->model,
                  "Model: opensora-v1.2, tiny, wan2.1-t2v-1.3b, wan2.1-t2v-14b or tiny-wan")
      ->capture_default_str();
  cmd->add_option("--devices", args->devices, "Devices, e.g. cuda:0,cuda:1 or cpu:0,cpu:1")
      ->required();
  cmd->add_option(
      "--weights", args->weights,
      "Weights directory (ditserve make-weights writes one); tiny has built-in weights");
  cmd->add_option("--random-weights", args->random_weights,
                  "Seeded random weights generated in memory instead of --weights (timings "
                  "only: the outputs are noise)");
  cmd->add_option("--shapes", args->shapes,
                  "Shapes: 144p:51,240p:51,... (Open-Sora's 16:9 sizes) or WIDTHxHEIGHT:FRAMES")
      ->capture_default_str();
  cmd->add_option("--dop", args->dops, "Degrees of parallelism, e.g. 1,2,4 (1 is required)")
      ->capture_default_str();
  cmd->add_option("--steps-timed", args->steps_timed, "Timed runs per figure (the median is kept)")
      ->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "Untimed runs before each figure")
      ->capture_default_str();
  cmd->add_option("--hardware", args->hardware,
                  "The profile's hardware label (default: the devices)");
  cmd->add_option("--out", args->out, "The profile JSON to write")->required();
  cmd->callback([args] { run(*args); });
}

}  // namespace ditserve::cli
