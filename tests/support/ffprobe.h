#pragma once
// Test helpers: run a shell command and read what ffprobe/ffmpeg say about a file.

#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>

namespace ditserve::testing {

// stdout of `command` (stderr discarded).
inline std::string run_command(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>/dev/null").c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  ::pclose(pipe);
  return out;
}

// The first video stream's codec_name, width, height, pix_fmt and nb_read_frames (decoded
// frame count), as ffprobe reports them; empty when ffprobe cannot read the file.
inline std::map<std::string, std::string> probe_video(const std::filesystem::path& file) {
  const std::string text = run_command(
      "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
      "stream=codec_name,width,height,pix_fmt,nb_read_frames -of default=noprint_wrappers=1 '" +
      file.string() + "'");
  std::map<std::string, std::string> fields;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return fields;
}

// The file's frames decoded to packed RGB24 by ffmpeg.
inline std::string decode_rgb(const std::filesystem::path& file) {
  return run_command("ffmpeg -v error -i '" + file.string() + "' -f rawvideo -pix_fmt rgb24 -");
}

}  // namespace ditserve::testing
