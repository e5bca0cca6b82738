#include "pipeline/video_writer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

// std::clamp(std::lround(v), 0, 255) for |v| < 2^31, inline: lround is a library call, three
// per pixel. Rounds half away from zero like lround; v - trunc(v) is exact in doubles, so
// the result is the same for every such v (VideoWriterTest checks all 2^24 RGB inputs).
std::uint8_t round_to_byte(double v) {
  double whole = static_cast<double>(static_cast<std::int32_t>(v));  // toward zero
  const double fraction = v - whole;
  whole += static_cast<double>(fraction >= 0.5) - static_cast<double>(fraction <= -0.5);
  return static_cast<std::uint8_t>(std::clamp(whole, 0.0, 255.0));
}

// BT.601 limited range, 8-bit RGB (interleaved) to Y, U and V planes, `count` <= 256 pixels.
// The channels are first spread into int arrays so that the compiler vectorises the double
// arithmetic, one plane per loop; the formula and its evaluation order are unchanged.
constexpr std::size_t kYuvChunk = 256;
void rgb_to_yuv444(const std::uint8_t* rgb, std::size_t count, std::uint8_t* y, std::uint8_t* u,
                   std::uint8_t* v) {
  std::int32_t red[kYuvChunk], green[kYuvChunk], blue[kYuvChunk];
  for (std::size_t i = 0; i < count; ++i) {
    red[i] = rgb[3 * i];
    green[i] = rgb[3 * i + 1];
    blue[i] = rgb[3 * i + 2];
  }
  for (std::size_t i = 0; i < count; ++i) {
    const double r = red[i], g = green[i], b = blue[i];
    y[i] = round_to_byte(16 + 0.256788 * r + 0.504129 * g + 0.097906 * b);
  }
  for (std::size_t i = 0; i < count; ++i) {
    const double r = red[i], g = green[i], b = blue[i];
    u[i] = round_to_byte(128 - 0.148223 * r - 0.290993 * g + 0.439216 * b);
  }
  for (std::size_t i = 0; i < count; ++i) {
    const double r = red[i], g = green[i], b = blue[i];
    v[i] = round_to_byte(128 + 0.439216 * r - 0.367788 * g - 0.071427 * b);
  }
}

// Open-Sora's mapping of one value in [-1, 1] to a byte (see to_rgb8).
std::uint8_t value_to_byte(float value) {
  const float x = std::clamp(value, -1.0f, 1.0f);
  return static_cast<std::uint8_t>(std::clamp((x + 1.0f) / 2.0f * 255.0f + 0.5f, 0.0f, 255.0f));
}

}  // namespace

void check_rgb_frames(const RgbFrames& video) {
  DITSERVE_CHECK(video.frames >= 1 && video.height >= 1 && video.width >= 1 &&
                     video.pixels.size() ==
                         static_cast<std::size_t>(video.frames * video.height * video.width * 3),
                 "write_video: ", video.frames, " frames of ", video.height, "x", video.width,
                 " need ", video.frames * video.height * video.width * 3, " bytes, got ",
                 video.pixels.size());
}

RgbFrames to_rgb8(const Tensor& video) {
  const Tensor v = video.dim() == 5 && video.size(0) == 1 ? video.select(0, 0) : video;
  DITSERVE_CHECK(v.dim() == 4 && v.size(0) == 3 && v.device().is_cpu(),
                 "to_rgb8: expected a host video [3, T, H, W] or [1, 3, T, H, W], got ",
                 video.describe());
  RgbFrames out{v.size(1), v.size(2), v.size(3), {}};
  // A decoded video is contiguous f32: read it in place rather than copying every value
  // through the strided element reader.
  std::vector<float> copy;
  const float* values = nullptr;  // [c][t][y][x]
  if (v.dtype() == DType::f32 && v.is_contiguous()) {
    values = v.data<float>();
  } else {
    copy = v.to_vector_f32();
    values = copy.data();
  }
  const std::int64_t plane = out.frames * out.height * out.width;
  out.pixels.resize(static_cast<std::size_t>(plane * 3));
  std::uint8_t* pixels = out.pixels.data();
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < plane; ++i) {
    pixels[3 * i] = value_to_byte(values[i]);
    pixels[3 * i + 1] = value_to_byte(values[plane + i]);
    pixels[3 * i + 2] = value_to_byte(values[2 * plane + i]);
  }
  return out;
}

OutputFormat output_format(const std::filesystem::path& path, std::int64_t frames) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".y4m") return OutputFormat::y4m;
  if (ext == ".mp4" || ext == ".png") {
    DITSERVE_CHECK(built_with_ffmpeg(), "output: this build of ditserve has no FFmpeg libraries, ",
                   "so it writes only .y4m, not '", path.string(), "'");
    if (ext == ".mp4") return OutputFormat::mp4;
    DITSERVE_CHECK(frames == 1, "output: a .png holds a single frame (frames=1), got frames=",
                   frames, "; use .mp4 for video");
    return OutputFormat::png;
  }
  throw InvalidArgument("output: '" + path.string() +
                        "' must end in .mp4, .y4m, or .png (for frames=1)");
}

void write_y4m(const std::filesystem::path& path, const RgbFrames& video, double fps) {
  check_rgb_frames(video);
  DITSERVE_CHECK(fps > 0 && std::isfinite(fps), "fps: must be > 0, got ", fps);
  const std::string header = "YUV4MPEG2 W" + std::to_string(video.width) + " H" +
                             std::to_string(video.height) + " F" +
                             std::to_string(std::lround(fps * 1000)) + ":1000 Ip A1:1 C444\n";
  const std::size_t plane = static_cast<std::size_t>(video.height * video.width);
  std::vector<std::uint8_t> yuv(3 * plane);
  AtomicFile file(path);
  file.write(header.data(), header.size());
  for (std::int64_t t = 0; t < video.frames; ++t) {
    const std::uint8_t* rgb = video.pixels.data() + static_cast<std::size_t>(t) * plane * 3;
    std::uint8_t* const planes = yuv.data();  // Y, then U, then V
    const auto chunks = static_cast<std::int64_t>((plane + kYuvChunk - 1) / kYuvChunk);
#pragma omp parallel for schedule(static)
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::size_t first = static_cast<std::size_t>(c) * kYuvChunk;
      rgb_to_yuv444(rgb + 3 * first, std::min(kYuvChunk, plane - first), planes + first,
                    planes + plane + first, planes + 2 * plane + first);
    }
    file.write("FRAME\n", 6);
    file.write(yuv.data(), yuv.size());
  }
  file.commit();
}

void write_video(const std::filesystem::path& path, const RgbFrames& video, double fps) {
  switch (output_format(path, video.frames)) {
    case OutputFormat::png: return write_png(path, video);
    case OutputFormat::y4m: return write_y4m(path, video, fps);
    case OutputFormat::mp4: return write_mp4(path, video, fps);
  }
}

}  // namespace ditserve
