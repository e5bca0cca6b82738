#include "pipeline/video_writer.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>

#include "support/ffprobe.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

class VideoWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    quiet_ffmpeg_logging();
    dir_ = std::filesystem::temp_directory_path() /
           ("ditserve_video_writer_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A moving colour gradient, frames x height x width.
  static RgbFrames gradient(std::int64_t frames, std::int64_t height, std::int64_t width) {
    RgbFrames v{frames, height, width, {}};
    for (std::int64_t t = 0; t < frames; ++t)
      for (std::int64_t y = 0; y < height; ++y)
        for (std::int64_t x = 0; x < width; ++x) {
          v.pixels.push_back(static_cast<std::uint8_t>((x * 255) / width));
          v.pixels.push_back(static_cast<std::uint8_t>((y * 255) / height));
          v.pixels.push_back(static_cast<std::uint8_t>((t * 40) % 256));
        }
    return v;
  }
  static std::string bytes_of(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  std::size_t files_in_dir() const {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir_),
                                                  std::filesystem::directory_iterator()));
  }

  std::filesystem::path dir_;
};

TEST_F(VideoWriterTest, Mp4ReadsBackWithFrameCountAndSize) {
  const auto path = dir_ / "out.mp4";
  write_mp4(path, gradient(7, 32, 48), 24.0);
  const auto info = testing::probe_video(path);
  EXPECT_EQ(info.at("codec_name"), "h264");
  EXPECT_EQ(info.at("width"), "48");
  EXPECT_EQ(info.at("height"), "32");
  EXPECT_EQ(info.at("pix_fmt"), "yuv420p");
  EXPECT_EQ(info.at("nb_read_frames"), "7");
  EXPECT_EQ(files_in_dir(), 1u);  // no temporary left over
  // Lossy, but close to the input.
  const std::string rgb = testing::decode_rgb(path);
  const RgbFrames ref = gradient(7, 32, 48);
  ASSERT_EQ(rgb.size(), ref.pixels.size());
  double err = 0;
  for (std::size_t i = 0; i < rgb.size(); ++i)
    err += std::abs(static_cast<int>(static_cast<std::uint8_t>(rgb[i])) - ref.pixels[i]);
  EXPECT_LT(err / rgb.size(), 4.0);
}

TEST_F(VideoWriterTest, Mp4IsByteIdenticalForSameFrames) {
  write_mp4(dir_ / "a.mp4", gradient(5, 16, 16), 8.0);
  write_mp4(dir_ / "b.mp4", gradient(5, 16, 16), 8.0);
  EXPECT_EQ(bytes_of(dir_ / "a.mp4"), bytes_of(dir_ / "b.mp4"));
  EXPECT_FALSE(bytes_of(dir_ / "a.mp4").empty());
}

TEST_F(VideoWriterTest, PngIsLossless) {
  const auto path = dir_ / "frame.png";
  const RgbFrames frame = gradient(1, 24, 40);
  write_video(path, frame, 24.0);
  const auto info = testing::probe_video(path);
  EXPECT_EQ(info.at("codec_name"), "png");
  EXPECT_EQ(info.at("width"), "40");
  EXPECT_EQ(info.at("height"), "24");
  const std::string rgb = testing::decode_rgb(path);
  EXPECT_EQ(std::vector<std::uint8_t>(rgb.begin(), rgb.end()), frame.pixels);
}

TEST_F(VideoWriterTest, Y4mReadsBackAsYuv444) {
  const auto path = dir_ / "out.y4m";
  const RgbFrames video = gradient(4, 24, 40);
  write_video(path, video, 12.0);
  const auto info = testing::probe_video(path);
  EXPECT_EQ(info.at("codec_name"), "rawvideo");
  EXPECT_EQ(info.at("pix_fmt"), "yuv444p");
  EXPECT_EQ(info.at("width"), "40");
  EXPECT_EQ(info.at("height"), "24");
  EXPECT_EQ(info.at("nb_read_frames"), "4");
  const std::string rgb = testing::decode_rgb(path);
  ASSERT_EQ(rgb.size(), video.pixels.size());
  int worst = 0;  // 8-bit YUV round trip: a couple of levels at most
  for (std::size_t i = 0; i < rgb.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<int>(static_cast<std::uint8_t>(rgb[i])) -
                                     static_cast<int>(video.pixels[i])));
  EXPECT_LE(worst, 3);
  EXPECT_EQ(files_in_dir(), 1u);
}

// 64-bit FNV-1a, to pin exact output bytes in a line.
std::uint64_t fnv1a(const void* data, std::size_t size) {
  std::uint64_t hash = 14695981039346656037ull;
  for (std::size_t i = 0; i < size; ++i) {
    hash ^= static_cast<const std::uint8_t*>(data)[i];
    hash *= 1099511628211ull;
  }
  return hash;
}

// Deterministic bytes on every platform (a plain LCG, no library distribution).
std::vector<std::uint8_t> lcg_bytes(std::size_t count, std::uint32_t seed) {
  std::vector<std::uint8_t> out(count);
  for (auto& b : out) {
    seed = seed * 1664525u + 1013904223u;
    b = static_cast<std::uint8_t>(seed >> 24);
  }
  return out;
}

// Values in [-1.2, 1.2] on a 1/1000 grid (exact on every platform), so clamping and the
// rounding at half-steps are both exercised.
std::vector<float> grid_values(std::size_t count) {
  std::vector<float> values(count);
  std::uint32_t seed = 11;
  for (auto& v : values) {
    seed = seed * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<int>((seed >> 8) % 2401) - 1200) / 1000.0f;
  }
  return values;
}

// The Y4M bytes are pinned to what the original per-pixel double formula wrote (hash taken
// before the writer was parallelised), so any change to the conversion fails here.
TEST_F(VideoWriterTest, Y4mBytesArePinned) {
  const auto path = dir_ / "pinned.y4m";
  write_y4m(path, RgbFrames{3, 10, 14, lcg_bytes(3 * 10 * 14 * 3, 7)}, 24.0);
  const std::string bytes = bytes_of(path);
  const std::string header = "YUV4MPEG2 W14 H10 F24000:1000 Ip A1:1 C444\n";
  ASSERT_EQ(bytes.size(), header.size() + 3 * (6 + 3 * 10 * 14));
  EXPECT_EQ(bytes.substr(0, header.size() + 6), header + "FRAME\n");
  EXPECT_EQ(fnv1a(bytes.data(), bytes.size()), 0x32835bb890c3d9e8ull) << std::hex << fnv1a(bytes.data(), bytes.size());
}

// Runs `body` with OpenMP's default team size set to `threads`, then restores it.
template <typename Body>
auto with_omp_threads(int threads, Body body) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  auto result = body();
  omp_set_num_threads(saved);
  return result;
}

// Frames of 18x30 = 540 pixels: two whole 256-pixel work chunks and a partial one.
TEST_F(VideoWriterTest, BytesDoNotDependOnThreadCount) {
  const RgbFrames video{3, 18, 30, lcg_bytes(3 * 18 * 30 * 3, 5)};
  const auto y4m_with = [&](int threads) {
    return with_omp_threads(threads, [&] {
      const auto path = dir_ / ("threads" + std::to_string(threads) + ".y4m");
      write_y4m(path, video, 24.0);
      return bytes_of(path);
    });
  };
  EXPECT_EQ(y4m_with(1), y4m_with(3));
  const Tensor values = Tensor::from_vector(grid_values(3 * 3 * 18 * 30), {1, 3, 3, 18, 30});
  const auto rgb_with = [&](int threads) {
    return with_omp_threads(threads, [&] { return to_rgb8(values).pixels; });
  };
  EXPECT_EQ(rgb_with(1), rgb_with(3));
}

// Every 8-bit RGB triple converts to the bytes of the BT.601 formula in doubles, rounded by
// std::lround: the writer's faster rounding must agree on the whole input domain.
TEST_F(VideoWriterTest, Y4mMatchesDoubleFormulaForEveryRgb) {
  RgbFrames all{1, 4096, 4096, {}};
  all.pixels.resize(3 * (std::size_t{1} << 24));
  for (std::size_t i = 0; i < (std::size_t{1} << 24); ++i) {
    all.pixels[3 * i] = static_cast<std::uint8_t>(i >> 16);
    all.pixels[3 * i + 1] = static_cast<std::uint8_t>(i >> 8);
    all.pixels[3 * i + 2] = static_cast<std::uint8_t>(i);
  }
  const auto path = dir_ / "all.y4m";
  write_y4m(path, all, 1.0);
  const std::string bytes = bytes_of(path);
  const std::size_t plane = std::size_t{1} << 24;
  const std::size_t data = bytes.size() - 3 * plane;
  ASSERT_EQ(bytes.substr(data - 6, 6), "FRAME\n");
  const auto byte = [](double v) {
    return static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
  };
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < plane; ++i) {
    const double r = all.pixels[3 * i], g = all.pixels[3 * i + 1], b = all.pixels[3 * i + 2];
    const std::uint8_t y = byte(16 + 0.256788 * r + 0.504129 * g + 0.097906 * b);
    const std::uint8_t u = byte(128 - 0.148223 * r - 0.290993 * g + 0.439216 * b);
    const std::uint8_t v = byte(128 + 0.439216 * r - 0.367788 * g - 0.071427 * b);
    const auto at = [&](std::size_t p) { return static_cast<std::uint8_t>(bytes[data + p * plane + i]); };
    if (at(0) != y || at(1) != u || at(2) != v) {
      if (++mismatches <= 5)
        ADD_FAILURE() << "rgb " << r << "," << g << "," << b << ": got " << int{at(0)} << ","
                      << int{at(1)} << "," << int{at(2)} << " want " << int{y} << "," << int{u}
                      << "," << int{v};
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST_F(VideoWriterTest, OddSizeFailsWithoutLeavingFiles) {
  try {
    write_mp4(dir_ / "odd.mp4", gradient(2, 15, 16), 24.0);
    FAIL() << "odd height accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("size"), std::string::npos) << e.what();
  }
  EXPECT_EQ(files_in_dir(), 0u);
}

TEST_F(VideoWriterTest, UnwritableDirectoryThrowsNamingPath) {
  const auto path = dir_ / "missing" / "out.mp4";
  try {
    write_mp4(path, gradient(2, 16, 16), 24.0);
    FAIL() << "wrote into a missing directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(files_in_dir(), 0u);
}

TEST(OutputFormat, ByExtension) {
  EXPECT_EQ(output_format("a/b.mp4", 16), OutputFormat::mp4);
  EXPECT_EQ(output_format("b.MP4", 1), OutputFormat::mp4);
  EXPECT_EQ(output_format("b.png", 1), OutputFormat::png);
  EXPECT_EQ(output_format("b.y4m", 16), OutputFormat::y4m);
  for (const auto& [name, frames] : {std::pair{"b.png", 2}, std::pair{"b.avi", 16},
                                     std::pair{"noext", 1}}) {
    try {
      output_format(name, frames);
      FAIL() << name << " accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("output"), std::string::npos) << e.what();
    }
  }
}

TEST(CheckRgbFrames, RejectsWrongPixelCount) {
  EXPECT_THROW(check_rgb_frames(RgbFrames{2, 2, 2, std::vector<std::uint8_t>(23)}), InvalidArgument);
  EXPECT_THROW(check_rgb_frames(RgbFrames{0, 2, 2, {}}), InvalidArgument);
  EXPECT_NO_THROW(check_rgb_frames(RgbFrames{2, 2, 2, std::vector<std::uint8_t>(24)}));
}

TEST(ToRgb8, ClampsAndMapsLikeOpenSora) {
  // [1, 3, T=1, H=1, W=4]: channel planes.
  const Tensor video = Tensor::from_vector({-1, 0, 1, 2,    // r
                                            -2, 0.5f, -0.5f, 0,  // g
                                            0, 0, 0, 0},     // b
                                           {1, 3, 1, 1, 4});
  const RgbFrames f = to_rgb8(video);
  EXPECT_EQ(f.frames, 1);
  EXPECT_EQ(f.height, 1);
  EXPECT_EQ(f.width, 4);
  // trunc((x + 1) / 2 * 255 + 0.5): -1 -> 0, 0 -> 128, 1 -> 255, 0.5 -> 191, -0.5 -> 64.
  EXPECT_EQ(f.pixels, (std::vector<std::uint8_t>{0, 0, 128, 128, 191, 128, 255, 64, 128, 255,
                                                 128, 128}));
  EXPECT_THROW(to_rgb8(Tensor::from_vector({0, 0}, {2, 1, 1, 1})), InvalidArgument);
}

// Pinned to the bytes of the original per-channel loop (hash taken before it was
// parallelised and made to read contiguous tensors in place): 300,000 evenly spaced values
// in [-1.103, 1.103], so clamping and every rounding step are exercised.
TEST(ToRgb8, BytesArePinned) {
  std::vector<float> values(300000);
  for (std::size_t i = 0; i < values.size(); ++i)
    values[i] = static_cast<float>(static_cast<int>(i) - 150000) / 136000.0f;
  const RgbFrames f = to_rgb8(Tensor::from_vector(values, {1, 3, 1, 100, 1000}));
  ASSERT_EQ(f.pixels.size(), values.size());
  EXPECT_EQ(fnv1a(f.pixels.data(), f.pixels.size()), 0x7ba82c6c212cf881ull)
      << std::hex << fnv1a(f.pixels.data(), f.pixels.size());
}

// A strided view (here [3, T, H, W] seen through a permutation) converts like its
// contiguous copy.
TEST(ToRgb8, StridedViewMatchesContiguous) {
  const std::vector<float> values = grid_values(3 * 2 * 6 * 10);
  const Tensor thwc = Tensor::from_vector(values, {2, 6, 10, 3});  // [T, H, W, C] in memory
  std::vector<float> planar(values.size());
  for (std::size_t p = 0; p < 2 * 6 * 10; ++p)
    for (std::size_t c = 0; c < 3; ++c) planar[c * 120 + p] = values[p * 3 + c];
  const RgbFrames strided = to_rgb8(thwc.permute({3, 0, 1, 2}));
  const RgbFrames contiguous = to_rgb8(Tensor::from_vector(planar, {3, 2, 6, 10}));
  EXPECT_EQ(strided.pixels, contiguous.pixels);
  EXPECT_EQ(strided.frames, 2);
  EXPECT_EQ(strided.width, 10);
}

}  // namespace
}  // namespace ditserve
