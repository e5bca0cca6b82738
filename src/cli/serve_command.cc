// ditserve serve: the HTTP server (server/) over the serving engine (runtime/). With no
// flags it serves the built-in `tiny` model on every GPU (4 CPU devices when there is
// none) at http://127.0.0.1:8000, keeping jobs under ./ditserve-data. SIGINT/SIGTERM stop
// it gracefully: no new connections, running jobs stop at a step boundary with their
// state on disk, and the next start resumes them.

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "pipeline/video_writer.h"
#include "runtime/engine.h"
#include "server/http_server.h"
#include "server/job_service.h"
#include "tensor/error.h"

namespace ditserve::cli {
namespace {

struct ServeArgs {
  server::HttpOptions http;
  server::ServiceOptions service;
  runtime::EngineOptions engine;
  std::vector<std::string> weights;  // MODEL=DIR
  std::vector<std::string> faults;   // DEVICE:STEPS or DEVICE:decode
  std::string profile;
  bool frozen_profile = false;
  std::string video_format;  // empty: mp4 with FFmpeg, else y4m
  int timeout_s = 10;
};

std::pair<std::string, std::string> split_once(const std::string& text, char sep, const std::string& flag,
                                               const std::string& form) {
  // Devices have colons (cpu:0:2 is cpu:0 and 2); directories may have "=".
  const auto at = sep == ':' ? text.rfind(sep) : text.find(sep);
  if (at == std::string::npos || at == 0 || at + 1 == text.size())
    throw InvalidArgument(flag + ": expected " + form + ", got '" + text + "'");
  return {text.substr(0, at), text.substr(at + 1)};
}

// SIGINT/SIGTERM end up as a byte on this pipe, read by a thread that stops the server: a
// handler, not blocked signals and sigwait, because threads started before main (OpenBLAS's)
// would still receive a process-directed signal and die of it.
int stop_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int sig) {
  const char byte = static_cast<char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(stop_pipe[1], &byte, 1);  // async-signal-safe
}

void install_stop_handlers() {
  if (::pipe(stop_pipe) != 0) throw Error("serve: cannot create the signal pipe");
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

void run(ServeArgs a) {
  for (const std::string& w : a.weights) {
    const auto [model, dir] = split_once(w, '=', "weights", "MODEL=DIR");
    a.engine.weights.emplace_back(model, dir);
  }
  for (const std::string& f : a.faults) {
    const auto [device, when] = split_once(f, ':', "inject-fault", "DEVICE:STEPS or DEVICE:decode");
    runtime::FaultInjection fault;
    fault.device = device;
    if (when == "decode") {
      fault.phase = runtime::FaultPhase::kDecode;  // its first decode
    } else {
      std::size_t used = 0;
      try {
        fault.nth = std::stoi(when, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != when.size())
        throw InvalidArgument("inject-fault: expected STEPS (an integer) or 'decode' after the device, got '" +
                              when + "'");
    }
    a.engine.faults.push_back(fault);
  }
  if (!a.profile.empty()) a.engine.profile = a.profile;
  a.engine.refine_profile = !a.frozen_profile;
  const std::string format = a.video_format.empty() ? (built_with_ffmpeg() ? "mp4" : "y4m") : a.video_format;
  if (format == "mp4") {
    if (!built_with_ffmpeg())
      throw InvalidArgument("video-format: mp4 needs a build with FFmpeg; this one writes y4m only");
    a.service.video_format = runtime::OutputFormat::kMp4;
  } else if (format == "y4m") {
    a.service.video_format = runtime::OutputFormat::kY4m;
  } else {
    throw InvalidArgument("video-format: expected mp4 or y4m, got '" + format + "'");
  }
  if (a.service.max_queue < 1) throw InvalidArgument("max-queue: must be >= 1");
  if (a.timeout_s < 1) throw InvalidArgument("timeout: must be >= 1 second");
  a.http.read_timeout_s = a.timeout_s;
  a.http.write_timeout_s = a.timeout_s;

  quiet_ffmpeg_logging();
  install_stop_handlers();
  std::unique_ptr<runtime::Engine> engine = runtime::make_engine(a.engine);
  server::JobService service(*engine, a.service);
  const server::RecoveryReport recovered = service.recover();
  server::HttpServer http(service, a.http);
  int port = 0;
  try {
    port = http.bind();
  } catch (...) {
    service.begin_shutdown();
    engine->shutdown();
    throw;
  }
  std::string models;
  for (const std::string& m : service.models()) models += (models.empty() ? "" : ",") + m;
  std::printf("ditserve serve: listening on http://%s:%d (models %s, data %s; recovered %d completed, "
              "%d resumed, %d cancelled, %d failed; purged %d deleted)\n",
              a.http.host.c_str(), port, models.c_str(), a.service.data_dir.c_str(), recovered.completed,
              recovered.resubmitted, recovered.cancelled, recovered.failed, recovered.deleted);
  std::fflush(stdout);

  std::thread signal_waiter([&] {
    char sig = 0;
    while (::read(stop_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (sig == SIGINT || sig == SIGTERM) {
      std::printf("ditserve serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
      std::fflush(stdout);
      http.stop();
    }
  });
  http.serve();
  on_stop_signal(0);  // wakes the waiter when the server stopped for another reason
  signal_waiter.join();
  service.begin_shutdown();
  engine->shutdown();  // running jobs stop at a step boundary; their state files stay
  std::printf("ditserve serve: stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve the OpenAI-style video/image API over HTTP (POST /v1/videos, GET /v1/videos/{id}[/content|/events], "
      "DELETE /v1/videos/{id}, POST /v1/images/generations, GET /v1/models, /health, /metrics). With no "
      "flags: the tiny model on every GPU, or 4 CPU devices when there is none, at 127.0.0.1:8000. "
      "SIGINT/SIGTERM stop it; unfinished jobs resume at the next start");
  cmd->add_option("--host", args->http.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", args->http.port, "Port to listen on (0: any free port, printed at start)")
      ->capture_default_str();
  cmd->add_option("--devices", args->engine.devices,
                  "Devices to serve on, comma-separated (cpu:0,cpu:1 or cuda:0,...); default: every GPU, "
                  "or 4 CPU devices when there is none")
      ->delimiter(',');
  cmd->add_option("--models", args->engine.models, "Models to serve, comma-separated (the first is the default)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--weights", args->weights,
                  "MODEL=DIR: weights directory for a model without built-in weights (repeatable)");
  cmd->add_option("--random-weights", args->engine.random_weights,
                  "Benchmarks: seeded random weights, generated in memory, for every model without "
                  "--weights (full-size ones too; the videos are noise)");
  cmd->add_option("--video-format", args->video_format,
                  "Videos as mp4 (H.264) or y4m (uncompressed) [default: mp4 when built with FFmpeg, else y4m]");
  cmd->add_flag("--cuda-graphs", args->engine.cuda_graphs,
                "Replay each denoising step as a CUDA graph captured per input shape (the first step of a shape runs eagerly, the second captures); on a CPU device the same results, no gain; a shape that cannot be captured runs eagerly, reported on stderr; steps sequence-parallel over several devices stay eager (off by default)");
  cmd->add_option("--policy", args->engine.policy, "Scheduling policy (as ditserve simulate --policy)")
      ->capture_default_str();
  CLI::Option* profile = cmd->add_option(
      "--profile", args->profile, "Scheduler profile JSON (ditserve profile); default: estimated at start, refined online");
  cmd->add_flag("--frozen-profile", args->frozen_profile,
                "Keep --profile's figures as loaded: observed durations refine nothing, so the policy decides "
                "on the durations ditserve simulate uses (serve vs simulate comparisons)")
      ->needs(profile);
  cmd->add_option("--data-dir", args->service.data_dir,
                  "Where jobs live: jobs.db (SQLite), outputs/, state/ (kept across restarts)")
      ->capture_default_str();
  cmd->add_option("--max-queue", args->service.max_queue,
                  "Jobs accepted but not started; more are refused with 429 and Retry-After")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", args->http.max_body_bytes, "Larger request bodies get 413")
      ->capture_default_str();
  cmd->add_option("--timeout", args->timeout_s,
                  "Seconds a client may stall (sending its request or reading the response) before it is dropped")
      ->capture_default_str();
  cmd->add_option("--inject-fault", args->faults,
                  "Testing: DEVICE:STEPS makes DEVICE fail as it starts its STEPS-th denoising step; "
                  "DEVICE:decode makes it fail as it starts the first VAE decode whose group holds it "
                  "(e.g. cpu:0:2, cpu:1:decode). The request goes back to the queue and finishes on "
                  "other devices; the failed one is not used again. Repeatable");
  cmd->callback([args] { run(*args); });
}

}  // namespace ditserve::cli
