#pragma once
// Running the built `ditserve` binary (path in env DITSERVE_BIN, set by tests/CMakeLists.txt)
// and inspecting its output files with ffprobe/ffmpeg.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support/ffprobe.h"

namespace ditserve::testing {

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string capture(const std::string& command, int* exit_code = nullptr) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  const int status = ::pclose(pipe);
  if (exit_code != nullptr) *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

// Runs `ditserve args...`, with `environment` ("NAME=value" each) added to its
// environment. OpenMP threads wait passively: on a busy 2-core CI machine spinning
// workers make the tiny model 10-20x slower (numerics are unaffected).
inline RunResult run_ditserve(const std::vector<std::string>& args,
                              const std::vector<std::string>& environment = {}) {
  const char* bin = std::getenv("DITSERVE_BIN");
  RunResult r;
  if (bin == nullptr) {
    ADD_FAILURE() << "DITSERVE_BIN is not set";
    return r;
  }
  std::string command = "env OMP_WAIT_POLICY=passive";  // env: quoted NAME=value pairs too
  for (const std::string& e : environment) command.append(" ").append(quote(e));
  command.append(" ").append(quote(bin));
  for (const std::string& a : args) command.append(" ").append(quote(a));
  r.out = capture(command.append(" 2>&1"), &r.exit_code);
  return r;
}

inline std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A fresh directory removed at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              ("ditserve_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  std::size_t entries() const {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(path_),
                                                  std::filesystem::directory_iterator()));
  }

 private:
  std::filesystem::path path_;
};

// `command` with `defaults`, where `overrides` replace or add options.
inline std::vector<std::string> command_args(const std::string& command,
                                             std::map<std::string, std::string> defaults,
                                             const std::map<std::string, std::string>& overrides) {
  for (const auto& [k, v] : overrides) defaults[k] = v;
  std::vector<std::string> args = {command};
  for (const auto& [k, v] : defaults) {
    args.push_back(k);
    args.push_back(v);
  }
  return args;
}

// `generate` of the built-in `model` into `output`, small enough for a CPU test (5 frames
// of 32x32, `steps` steps, seed 7); `overrides` replace or add options.
inline std::vector<std::string> tiny_generate_args(
    const std::string& model, int steps, const std::filesystem::path& output,
    const std::map<std::string, std::string>& overrides = {}) {
  return command_args("generate",
                      {{"--model", model}, {"--prompt", "a red fox runs through a snowy forest"},
                       {"--frames", "5"}, {"--size", "32x32"}, {"--steps", std::to_string(steps)},
                       {"--seed", "7"}, {"-o", output.string()}},
                      overrides);
}

// Runs a command that must fail: non-zero exit, one line "error: ..." containing every
// string of `expected`, and nothing left in `out_dir`.
inline void expect_rejected(const std::vector<std::string>& args, const TempDir& out_dir,
                            const std::vector<std::string>& expected) {
  const RunResult r = run_ditserve(args);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "not one line: " << r.out;
  for (const std::string& e : expected) EXPECT_NE(r.out.find(e), std::string::npos) << r.out;
  EXPECT_EQ(out_dir.entries(), 0u) << "output left behind after: " << r.out;
}

}  // namespace ditserve::testing
