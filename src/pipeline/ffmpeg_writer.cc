// MP4 and PNG output through FFmpeg's libraries (video_writer.h), compiled to errors in
// builds without them (DITSERVE_FFMPEG in cmake/dependencies.cmake).

#include "pipeline/video_writer.h"
#include "tensor/error.h"

#ifdef DITSERVE_WITH_FFMPEG

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <system_error>

#include "io/atomic_file.h"

namespace ditserve {
namespace {


struct CodecContextDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
struct FormatDeleter {
  void operator()(AVFormatContext* f) const {
    if (f->pb != nullptr) avio_closep(&f->pb);
    avformat_free_context(f);
  }
};
using CodecContext = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using Frame = std::unique_ptr<AVFrame, FrameDeleter>;
using Packet = std::unique_ptr<AVPacket, PacketDeleter>;

// Throws Error naming the output file and FFmpeg's reason when `ret` < 0.
void check_av(int ret, const std::filesystem::path& path, const char* what) {
  if (ret >= 0) return;
  char reason[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(ret, reason, sizeof(reason));
  throw Error("writing '" + path.string() + "': " + what + " failed (" + reason + ")");
}

// A path beside the target, removed on destruction unless committed by rename.
class TempPath {
 public:
  explicit TempPath(const std::filesystem::path& target) : target_(target) {
    std::string name = target.filename().string();
    name.insert(0, 1, '.');
    name.append(".tmp").append(std::to_string(::getpid()));
    temp_ = target.parent_path() / name;
  }
  ~TempPath() {
    if (!committed_) {
      std::error_code ignored;
      std::filesystem::remove(temp_, ignored);
    }
  }
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;

  const std::filesystem::path& path() const { return temp_; }
  void commit() {
    std::error_code err;
    std::filesystem::rename(temp_, target_, err);
    if (err) throw Error("writing '" + target_.string() + "': rename failed (" + err.message() + ")");
    committed_ = true;
  }

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  bool committed_ = false;
};

constexpr int kEncoderThreads = 4;

CodecContext open_encoder(const AVCodec* codec, const std::filesystem::path& path, int width,
                          int height, AVPixelFormat format, AVRational time_base,
                          bool global_header) {
  if (codec == nullptr) throw Error("writing '" + path.string() + "': encoder not available");
  CodecContext ctx(avcodec_alloc_context3(codec));
  if (!ctx) throw Error("writing '" + path.string() + "': out of memory");
  ctx->width = width;
  ctx->height = height;
  ctx->pix_fmt = format;
  ctx->time_base = time_base;
  ctx->framerate = av_inv_q(time_base);
  // A fixed count, not 0 (one per core): x264's frame threads give the same bitstream for the
  // same input and thread count, so the bytes do not depend on the machine. A 1280x720 x
  // 51-frame clip on a 2-core machine: 7.95 s to write on one encoder thread, 4.74 s on four.
  ctx->thread_count = kEncoderThreads;
  ctx->flags |= AV_CODEC_FLAG_BITEXACT;
  if (global_header) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (codec->id == AV_CODEC_ID_H264) {
    av_opt_set(ctx->priv_data, "preset", "fast", 0);
    av_opt_set(ctx->priv_data, "crf", "18", 0);
    // log=-1: no encoder chatter on stderr. mbtree=0: with x264's macroblock-tree rate
    // control, identical frames encoded in one serving process came out as one of two
    // different bitstreams from job to job (5-frame clips); the same seed must give the
    // same video, which the engine's resume tests check pixel for pixel.
    av_opt_set(ctx->priv_data, "x264-params", "log=-1:mbtree=0", 0);
  }
  check_av(avcodec_open2(ctx.get(), codec, nullptr), path, "opening the encoder");
  return ctx;
}

// Copies frame `index` of `video` into `rgb` (an RGB24 AVFrame).
void fill_rgb(const RgbFrames& video, std::int64_t index, AVFrame* rgb) {
  const std::size_t row_bytes = static_cast<std::size_t>(video.width) * 3;
  const std::uint8_t* src =
      video.pixels.data() + static_cast<std::size_t>(index * video.height) * row_bytes;
  for (std::int64_t y = 0; y < video.height; ++y)
    std::copy_n(src + static_cast<std::size_t>(y) * row_bytes, row_bytes,
                rgb->data[0] + y * rgb->linesize[0]);
}

Frame alloc_frame(AVPixelFormat format, const RgbFrames& video, const std::filesystem::path& path) {
  Frame frame(av_frame_alloc());
  if (!frame) throw Error("writing '" + path.string() + "': out of memory");
  frame->format = format;
  frame->width = static_cast<int>(video.width);
  frame->height = static_cast<int>(video.height);
  check_av(av_frame_get_buffer(frame.get(), 0), path, "allocating a frame");
  return frame;
}

}  // namespace

bool built_with_ffmpeg() { return true; }

void quiet_ffmpeg_logging() { av_log_set_level(AV_LOG_ERROR); }

void write_mp4(const std::filesystem::path& path, const RgbFrames& video, double fps) {
  check_rgb_frames(video);
  DITSERVE_CHECK(video.width % 2 == 0 && video.height % 2 == 0, "size: H.264 (yuv420p) needs ",
                 "even width and height, got ", video.width, "x", video.height);
  DITSERVE_CHECK(fps > 0 && std::isfinite(fps), "fps: must be > 0, got ", fps);
  TempPath temp(path);
  {
    AVFormatContext* raw = nullptr;
    check_av(avformat_alloc_output_context2(&raw, nullptr, "mp4", temp.path().c_str()), path,
             "creating the MP4 muxer");
    std::unique_ptr<AVFormatContext, FormatDeleter> fmt(raw);
    fmt->flags |= AVFMT_FLAG_BITEXACT;
    const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
    if (codec == nullptr) codec = avcodec_find_encoder(AV_CODEC_ID_H264);
    const AVRational time_base = av_inv_q(av_d2q(fps, 100000));
    CodecContext ctx = open_encoder(codec, path, static_cast<int>(video.width),
                                    static_cast<int>(video.height), AV_PIX_FMT_YUV420P, time_base,
                                    (fmt->oformat->flags & AVFMT_GLOBALHEADER) != 0);
    AVStream* stream = avformat_new_stream(fmt.get(), nullptr);
    if (stream == nullptr) throw Error("writing '" + path.string() + "': cannot add a stream");
    check_av(avcodec_parameters_from_context(stream->codecpar, ctx.get()), path, "stream setup");
    stream->time_base = time_base;
    stream->avg_frame_rate = ctx->framerate;
    check_av(avio_open(&fmt->pb, temp.path().c_str(), AVIO_FLAG_WRITE), path, "opening the file");
    check_av(avformat_write_header(fmt.get(), nullptr), path, "writing the MP4 header");

    std::unique_ptr<SwsContext, SwsDeleter> sws(sws_getContext(
        static_cast<int>(video.width), static_cast<int>(video.height), AV_PIX_FMT_RGB24,
        static_cast<int>(video.width), static_cast<int>(video.height), AV_PIX_FMT_YUV420P,
        SWS_BICUBIC | SWS_ACCURATE_RND | SWS_BITEXACT, nullptr, nullptr, nullptr));
    if (!sws) throw Error("writing '" + path.string() + "': cannot convert RGB to yuv420p");
    const Frame rgb = alloc_frame(AV_PIX_FMT_RGB24, video, path);
    const Frame yuv = alloc_frame(AV_PIX_FMT_YUV420P, video, path);
    const Packet packet(av_packet_alloc());
    if (!packet) throw Error("writing '" + path.string() + "': out of memory");

    const auto drain = [&] {
      for (;;) {
        const int ret = avcodec_receive_packet(ctx.get(), packet.get());
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
        check_av(ret, path, "encoding");
        av_packet_rescale_ts(packet.get(), ctx->time_base, stream->time_base);
        packet->stream_index = stream->index;
        check_av(av_interleaved_write_frame(fmt.get(), packet.get()), path, "writing a packet");
      }
    };
    for (std::int64_t i = 0; i < video.frames; ++i) {
      fill_rgb(video, i, rgb.get());
      check_av(av_frame_make_writable(yuv.get()), path, "allocating a frame");
      sws_scale(sws.get(), rgb->data, rgb->linesize, 0, static_cast<int>(video.height), yuv->data,
                yuv->linesize);
      yuv->pts = i;
      check_av(avcodec_send_frame(ctx.get(), yuv.get()), path, "encoding");
      drain();
    }
    check_av(avcodec_send_frame(ctx.get(), nullptr), path, "flushing the encoder");
    drain();
    check_av(av_write_trailer(fmt.get()), path, "writing the MP4 trailer");
    check_av(avio_closep(&fmt->pb), path, "closing the file");
  }
  temp.commit();
}

void write_png(const std::filesystem::path& path, const RgbFrames& video) {
  check_rgb_frames(video);
  DITSERVE_CHECK(video.frames == 1, "output: a .png holds a single frame, got frames=",
                 video.frames);
  CodecContext ctx = open_encoder(avcodec_find_encoder(AV_CODEC_ID_PNG), path,
                                  static_cast<int>(video.width), static_cast<int>(video.height),
                                  AV_PIX_FMT_RGB24, AVRational{1, 1}, false);
  const Frame rgb = alloc_frame(AV_PIX_FMT_RGB24, video, path);
  fill_rgb(video, 0, rgb.get());
  rgb->pts = 0;
  const Packet packet(av_packet_alloc());
  if (!packet) throw Error("writing '" + path.string() + "': out of memory");
  check_av(avcodec_send_frame(ctx.get(), rgb.get()), path, "encoding the PNG");
  check_av(avcodec_send_frame(ctx.get(), nullptr), path, "encoding the PNG");
  check_av(avcodec_receive_packet(ctx.get(), packet.get()), path, "encoding the PNG");
  AtomicFile file(path);
  file.write(packet->data, static_cast<std::size_t>(packet->size));
  file.commit();
}

}  // namespace ditserve

#else  // !DITSERVE_WITH_FFMPEG

namespace ditserve {
namespace {
[[noreturn]] void no_ffmpeg(const std::filesystem::path& path) {
  throw Error("writing '" + path.string() + "': this build of ditserve has no FFmpeg libraries " +
              "(MP4/PNG); write .y4m instead");
}
}  // namespace

bool built_with_ffmpeg() { return false; }
void quiet_ffmpeg_logging() {}
void write_mp4(const std::filesystem::path& path, const RgbFrames&, double) { no_ffmpeg(path); }
void write_png(const std::filesystem::path& path, const RgbFrames&) { no_ffmpeg(path); }

}  // namespace ditserve

#endif  // DITSERVE_WITH_FFMPEG
