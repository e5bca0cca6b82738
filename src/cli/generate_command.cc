// ditserve generate: one text-to-video request end to end on one device, written as MP4
// (or PNG for a single frame), with a progress bar on a terminal and phase timings.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "kernels/backend.h"
#include "pipeline/pipeline.h"
#include "pipeline/video_writer.h"
#include "tensor/error.h"

namespace ditserve::cli {
namespace {

// Unset options take the model's defaults (default_request).
struct GenerateArgs {
  std::string model = "tiny";
  std::optional<std::string> size;
  std::string device = "cpu";
  std::string output;
  std::string weights;
  std::optional<std::uint64_t> random_weights;  // seed
  std::string prompt;
  std::string negative_prompt;
  std::uint64_t seed = 0;
  std::optional<std::int64_t> frames;
  std::optional<int> steps;
  std::optional<float> guidance;
  std::optional<float> fps;
  std::optional<std::string> sampler;
  std::optional<double> shift;
  bool cuda_graphs = false;
};

GenerateRequest to_request(const ModelSpec& spec, const GenerateArgs& a) {
  GenerateRequest r = default_request(spec);
  r.prompt = a.prompt;
  r.negative_prompt = a.negative_prompt;
  r.seed = a.seed;
  if (a.frames) r.frames = *a.frames;
  if (a.steps) r.steps = *a.steps;
  if (a.guidance) r.guidance = *a.guidance;
  if (a.fps) r.fps = *a.fps;
  if (a.sampler) r.sampler = parse_sampler(*a.sampler);
  if (a.shift) r.shift = *a.shift;
  return r;
}

// "WIDTHxHEIGHT" -> request.width/height.
void parse_size(const std::string& text, GenerateRequest& r) {
  const auto x = text.find('x');
  std::size_t used_w = 0, used_h = 0;
  try {
    if (x == std::string::npos) throw std::invalid_argument("no x");
    r.width = std::stoll(text.substr(0, x), &used_w);
    r.height = std::stoll(text.substr(x + 1), &used_h);
  } catch (const std::exception&) {
    used_w = 0;
  }
  if (used_w == 0 || used_w != x || used_h != text.size() - x - 1)
    throw InvalidArgument("size: expected WIDTHxHEIGHT such as 64x64, got '" + text + "'");
}

class Stopwatch {
 public:
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return s;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// On a terminal, one bar redrawn in place after every step. Otherwise (a log file, a
// pipe) a line about every tenth of the steps, so a run that is cut off still shows how
// far it got and at what rate.
void print_progress(bool terminal, std::size_t done, std::size_t total, double elapsed_s) {
  const double per_step = done == 0 ? 0.0 : elapsed_s / static_cast<double>(done);
  if (!terminal) {
    const std::size_t every = std::max<std::size_t>(1, total / 10);
    if (done > 0 && (done % every == 0 || done == total))
      std::fprintf(stderr, "denoise %zu/%zu  %.3f s/step\n", done, total, per_step);
    return;
  }
  constexpr std::size_t kWidth = 30;
  const std::size_t filled = total == 0 ? kWidth : done * kWidth / total;
  std::string bar(filled, '#');
  bar.resize(kWidth, '-');
  std::fprintf(stderr, "\rdenoise [%s] %zu/%zu  %.2f s/step", bar.c_str(), done, total, per_step);
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

void run(const GenerateArgs& a) {
  quiet_ffmpeg_logging();
  ModelSpec spec = find_model(a.model);
  if (a.random_weights) {
    if (!a.weights.empty())
      throw InvalidArgument("random-weights: give either --weights or --random-weights, not both");
    // What the built-in models do with their fixed seed; the tokenizer is then the
    // built-in one too (its ids are valid for every model's vocabulary).
    spec.builtin_seed = *a.random_weights;
  }
  GenerateRequest request = to_request(spec, a);
  if (a.size) parse_size(*a.size, request);
  validate_request(spec, request);
  const std::filesystem::path output = a.output;
  output_format(output, request.frames);
  const std::filesystem::path out_dir = output.has_parent_path() ? output.parent_path() : ".";
  if (!std::filesystem::is_directory(out_dir))
    throw InvalidArgument("output: directory '" + out_dir.string() + "' does not exist");
  std::optional<std::filesystem::path> weights;
  if (!a.weights.empty()) weights = a.weights;
  // Prompt errors before loading weights.
  const Tokenizer tokenizer = load_tokenizer(spec, weights);
  tokenizer.encode(request.prompt);
  if (spec.is_wan() && !request.negative_prompt.empty()) {
    try {
      tokenizer.encode(request.negative_prompt);
    } catch (const InvalidArgument& e) {
      throw InvalidArgument("negative_" + std::string(e.what()));
    }
  }
  const std::unique_ptr<Backend> be = make_backend(Device::parse(a.device));

  Stopwatch clock;
  Pipeline pipeline(spec, *be, weights, PipelineOptions{a.cuda_graphs});
  const double load_s = clock.lap();
  std::fprintf(stderr, "loaded %s on %s in %.1f s\n", spec.name.c_str(), be->device().str().c_str(), load_s);
  Captions captions = pipeline.encode(request.prompt, request.negative_prompt);
  be->synchronize();
  const double encode_s = clock.lap();

  GenerationState state = pipeline.start(request, std::move(captions));
  const bool terminal = ::isatty(STDERR_FILENO) != 0;
  double denoise_s = 0;
  if (terminal) print_progress(terminal, 0, state.num_steps(), 0);
  while (!state.done()) {
    state.step(*be, pipeline.transformer());
    be->synchronize();  // the step's time, for the progress line (no work is waiting behind it)
    denoise_s += clock.lap();
    print_progress(terminal, state.step_index(), state.num_steps(), denoise_s);
  }

  const RgbFrames frames = to_rgb8(pipeline.decode(state));
  const double decode_s = clock.lap();
  write_video(output, frames, request.fps);
  const double write_s = clock.lap();

  std::printf("wrote %s: %lld frames of %lldx%lld (model %s, %s, %d steps, seed %llu)\n",
              output.c_str(), static_cast<long long>(frames.frames),
              static_cast<long long>(frames.width), static_cast<long long>(frames.height),
              spec.name.c_str(), be->device().str().c_str(), request.steps,
              static_cast<unsigned long long>(request.seed));
  std::printf("timings: load %.3f s, encode %.3f s, denoise %.3f s (%.3f s/step), decode %.3f s, "
              "write %.3f s\n",
              load_s, encode_s, denoise_s, denoise_s / request.steps, decode_s, write_s);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate a video (or an image) from a prompt");
  cmd->add_option("--model", args->model,
                  "Model: opensora-v1.2, tiny, wan2.1-t2v-1.3b, wan2.1-t2v-14b or tiny-wan")
      ->capture_default_str();
  cmd->add_option("--prompt", args->prompt, "The text prompt")->required();
  cmd->add_option("--negative-prompt", args->negative_prompt,
                  "Wan: the unconditional prompt (default: Wan's sample_neg_prompt)");
  cmd->add_option("--frames", args->frames,
                  "Video frames (1 = an image; Wan: 4k+1) [model default: Open-Sora 16, Wan 81]");
  cmd->add_option("--size", args->size,
                  "WIDTHxHEIGHT in pixels, e.g. 1280x720 "
                  "[model default: 64x64, Wan 832x480 / 1280x720]");
  cmd->add_option("--steps", args->steps, "Denoising steps [model default: Open-Sora 30, Wan 50]");
  cmd->add_option("--guidance", args->guidance,
                  "Classifier-free guidance scale [model default: Open-Sora 7, Wan 1.3B 6, 14B 5]");
  cmd->add_option("--sampler", args->sampler,
                  "rflow (Open-Sora), unipc or euler (Wan) [model default: rflow / unipc]");
  cmd->add_option("--shift", args->shift,
                  "Wan's flow time shift [model default: 1.3B 8, 14B 5]");
  cmd->add_option("--seed", args->seed, "Seed of the initial noise")->capture_default_str();
  cmd->add_option("--fps", args->fps,
                  "Frames per second (conditioning and MP4 rate) [model default: 24, Wan 16]");
  cmd->add_option("--device", args->device, "cpu or cuda:N")->capture_default_str();
  cmd->add_option("--weights", args->weights,
                  "Weights directory (ditserve make-weights writes one); tiny has built-in weights");
  cmd->add_option("--random-weights", args->random_weights,
                  "Seeded random weights generated in memory instead of --weights, with the "
                  "built-in tokenizer (benchmarks: the video is noise)");
  cmd->add_option("-o,--output", args->output, "Output file: .mp4, or .png for --frames 1")
      ->required();
  cmd->add_flag("--cuda-graphs", args->cuda_graphs,
                "Replay each denoising step as a CUDA graph captured per input shape (the first step of a shape runs eagerly, the second captures); on a CPU device the same results, no gain; a shape that cannot be captured runs eagerly, reported on stderr (off by default)");
  cmd->callback([args] { run(*args); });
}

}  // namespace ditserve::cli
