#include "pipeline/video_writer.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ditserve
