#pragma once
// Generated frames to files: MP4 (H.264 through libavcodec/libavformat, yuv420p), PNG for
// a single frame, or Y4M (uncompressed YUV 4:4:4, no library needed; what builds without
// FFmpeg write). Each writer writes a temporary file beside the target and renames it at
// the end, so an error leaves no partial output behind.

#include <cstdint>
#include <filesystem>
#include <vector>

#include "tensor/tensor.h"

namespace ditserve {

// 8-bit RGB frames, pixels laid out [frame][row][column][r, g, b].
struct RgbFrames {
  std::int64_t frames = 0;
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::vector<std::uint8_t> pixels;
};

// Throws InvalidArgument unless `video` is non-empty and pixels holds exactly
// frames * height * width * 3 bytes.
void check_rgb_frames(const RgbFrames& video);

// A decoded video, host f32 [3, T, H, W] or [1, 3, T, H, W] in [-1, 1], as Open-Sora
// saves it: clamp to [-1, 1], map to [0, 1], then trunc(x * 255 + 0.5). Converts on
// OpenMP's threads; the bytes do not depend on their number.
RgbFrames to_rgb8(const Tensor& video);

enum class OutputFormat { mp4, png, y4m };
// By the extension of `path` (.mp4, .png, .y4m). Throws InvalidArgument naming "output"
// for any other extension, for .png with frames != 1, and for .mp4/.png in a build
// without FFmpeg.
OutputFormat output_format(const std::filesystem::path& path, std::int64_t frames);

// H.264 (libx264, one thread, bit-exact flags, so the same frames give the same bytes)
// in an MP4 at `fps` frames per second. Throws InvalidArgument naming "size" unless width
// and height are even (4:2:0 chroma), Error naming the path on any FFmpeg failure.
void write_mp4(const std::filesystem::path& path, const RgbFrames& video, double fps);
// REQUIRES: video.frames == 1.
void write_png(const std::filesystem::path& path, const RgbFrames& video);
// YUV4MPEG2, BT.601 limited range, 4:4:4 (C444): ffmpeg and most players read it. Converts
// on OpenMP's threads; the bytes do not depend on their number.
// Throws InvalidArgument naming "fps" unless fps > 0, Error naming the path on I/O failure.
void write_y4m(const std::filesystem::path& path, const RgbFrames& video, double fps);

// Whether this build writes MP4 and PNG (FFmpeg's libraries were found at build time).
bool built_with_ffmpeg();

// Limits FFmpeg's logging to errors. FFmpeg's log level is process-wide, so programs call
// this once at start-up (libx264 otherwise prints its settings on every video).
void quiet_ffmpeg_logging();

// write_mp4, write_png or write_y4m by output_format(path, video.frames).
void write_video(const std::filesystem::path& path, const RgbFrames& video, double fps);

}  // namespace ditserve
