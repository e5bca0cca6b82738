// The HTTP front end over the fake engine, driven by an HTTP client on loopback: the
// OpenAI shapes, every bad input as an error object naming the field, 429 under a burst,
// server-sent events, metrics, images, and a client that stalls.

#include "server/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "fake_engine.h"
#include "server/job_service.h"
#include "server_test_util.h"

namespace ditserve::server {
namespace {

using testing::FakeEngine;
using testing::TempDataDir;

class HttpTest : public ::testing::Test {
 protected:
  void start(FakeEngine::Options engine_options = {}, std::size_t max_queue = 64,
             runtime::OutputFormat video_format = runtime::OutputFormat::kMp4) {
    engine_ = std::make_unique<FakeEngine>(engine_options);
    ServiceOptions options;
    options.data_dir = dir_.path();
    options.max_queue = max_queue;
    options.video_format = video_format;
    service_ = std::make_unique<JobService>(*engine_, options);
    service_->recover();
    HttpOptions http;
    http.port = 0;
    http.max_body_bytes = 64 * 1024;
    http.read_timeout_s = 1;
    http_ = std::make_unique<HttpServer>(*service_, http);
    port_ = http_->bind();
    thread_ = std::thread([this] { http_->serve(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(20, 0);
  }
  void TearDown() override {
    if (!http_) return;
    http_->stop();
    thread_.join();
    engine_->shutdown();
  }

  nlohmann::json post_json(const std::string& path, const std::string& body, int expect_status) {
    const auto res = client_->Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->status, expect_status) << body << " -> " << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    return nlohmann::json::parse(res->body);
  }
  nlohmann::json get_json(const std::string& path, int expect_status) {
    const auto res = client_->Get(path.c_str());
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->status, expect_status) << path << " -> " << res->body;
    return nlohmann::json::parse(res->body);
  }
  nlohmann::json wait_status(const std::string& id, const std::string& status) {
    nlohmann::json v;
    for (int i = 0; i < 1000; ++i) {
      v = get_json("/v1/videos/" + id, 200);
      if (v["status"] == status) return v;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ADD_FAILURE() << id << " never reached " << status << ": " << v.dump();
    return v;
  }

  TempDataDir dir_{"http"};
  std::unique_ptr<FakeEngine> engine_;
  std::unique_ptr<JobService> service_;
  std::unique_ptr<HttpServer> http_;
  std::thread thread_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

void expect_error(const nlohmann::json& body, const std::string& param) {
  ASSERT_TRUE(body.contains("error")) << body.dump();
  const nlohmann::json& e = body["error"];
  EXPECT_FALSE(e["message"].get<std::string>().empty());
  EXPECT_TRUE(e["type"].is_string());
  if (param.empty()) EXPECT_TRUE(e["param"].is_null()) << body.dump();
  else EXPECT_EQ(e["param"], param) << body.dump();
  EXPECT_TRUE(e.contains("code"));
}

TEST_F(HttpTest, SubmitPollDownload) {
  start();
  const nlohmann::json created =
      post_json("/v1/videos", R"({"prompt": "a cat", "size": "32x32", "num_frames": 5, "steps": 2})", 200);
  EXPECT_EQ(created["object"], "video");
  EXPECT_EQ(created["size"], "32x32");
  EXPECT_EQ(created["model"], "tiny");
  EXPECT_TRUE(created["created_at"].is_number_integer());
  const std::string id = created["id"];
  const nlohmann::json done = wait_status(id, "completed");
  EXPECT_EQ(done["progress"], 100);
  EXPECT_EQ(done["step"], 2);
  EXPECT_EQ(done["dop"], 1);
  EXPECT_EQ(done["decode_dop"], 1);
  EXPECT_EQ(done["decode_devices"], nlohmann::json::array({"cpu:0"}));
  EXPECT_TRUE(done["timings"].contains("denoise_s"));
  const auto content = client_->Get(("/v1/videos/" + id + "/content").c_str());
  ASSERT_TRUE(content);
  EXPECT_EQ(content->status, 200);
  EXPECT_EQ(content->get_header_value("Content-Type"), "video/mp4");
  EXPECT_EQ(content->body, "FAKE " + id);
  expect_error(get_json("/v1/videos/" + id + "/content?variant=thumbnail", 400), "variant");
}

TEST_F(HttpTest, Y4mVideosWhenTheServiceWritesY4m) {
  start({}, 64, runtime::OutputFormat::kY4m);  // what `serve` picks in a build without FFmpeg
  const nlohmann::json created =
      post_json("/v1/videos", R"({"prompt": "a cat", "size": "32x32", "num_frames": 5, "steps": 2})", 200);
  const std::string id = created["id"];
  wait_status(id, "completed");
  const auto content = client_->Get(("/v1/videos/" + id + "/content").c_str());
  ASSERT_TRUE(content);
  EXPECT_EQ(content->status, 200);
  EXPECT_EQ(content->get_header_value("Content-Type"), "video/x-yuv4mpeg");
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "outputs" / (id + ".y4m")));
}

TEST_F(HttpTest, MultipartBodiesAsOpenAiSdksSendThem) {
  start();
  const httplib::MultipartFormDataItems items = {
      {"prompt", "a dog", "", ""}, {"seconds", "1", "", ""}, {"size", "16x16", "", ""}, {"steps", "1", "", ""}};
  auto res = client_->Post("/v1/videos", items);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const nlohmann::json v = nlohmann::json::parse(res->body);
  EXPECT_EQ(v["num_frames"], 24);
  EXPECT_EQ(v["seconds"], "1");
  const httplib::MultipartFormDataItems with_file = {{"prompt", "a dog", "", ""},
                                                     {"input_reference", "PNG...", "ref.png", "image/png"}};
  res = client_->Post("/v1/videos", with_file);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  expect_error(nlohmann::json::parse(res->body), "input_reference");
}

TEST_F(HttpTest, EveryBadInputIsA4xxNamingTheField) {
  start();
  expect_error(post_json("/v1/videos", R"({"prompt": "a cat", )", 400), "");
  expect_error(post_json("/v1/videos", R"({"prompt": "a cat", "steps": "many"})", 400), "steps");
  expect_error(post_json("/v1/videos", R"({"prompt": "a cat", "style": "noir"})", 400), "style");
  expect_error(post_json("/v1/videos", R"({"prompt": "a cat", "model": "sora-2"})", 400), "model");
  expect_error(post_json("/v1/videos", R"({"prompt": "a cat", "size": "4096x4096"})", 400), "size");
  expect_error(post_json("/v1/videos", R"({"prompt": "a cat", "num_frames": 1000000})", 400), "num_frames");
  expect_error(post_json("/v1/videos", R"({"prompt": "a cat", "steps": 100000})", 400), "steps");
  // The body limit: 413, and the server keeps serving.
  const auto huge = client_->Post("/v1/videos", std::string(200 * 1024, 'x'), "application/json");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);
  expect_error(nlohmann::json::parse(huge->body), "");
  auto res = client_->Post("/v1/videos", "prompt=x", "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415);
  expect_error(get_json("/v1/videos/video_nope", 404), "video_id");
  expect_error(get_json("/v1/videos/video_nope/content", 404), "video_id");
  expect_error(get_json("/v1/videos/video_nope/events", 404), "video_id");
  expect_error(get_json("/v1/nothing-here", 404), "");
  res = client_->Delete("/v1/videos/video_nope");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  expect_error(get_json("/v1/videos?limit=0", 400), "limit");
  expect_error(get_json("/v1/videos?order=sideways", 400), "order");
  expect_error(get_json("/v1/videos?after=video_nope", 400), "after");
  EXPECT_EQ(get_json("/health", 200)["status"], "ok");
}

// OpenAI's delete: {"id", "object": "video.deleted", "deleted": true}, after which the
// id is unknown everywhere (a 404 naming it), whether the video had finished or was queued.
TEST_F(HttpTest, DeleteRemovesTheVideoThenItIsA404) {
  start();
  const std::string done = post_json("/v1/videos", R"({"prompt": "a cat", "steps": 2})", 200)["id"];
  wait_status(done, "completed");
  const std::string output = (dir_.path() / "outputs" / (done + ".mp4")).string();
  ASSERT_TRUE(std::filesystem::exists(output));
  const std::string kept = post_json("/v1/videos", R"({"prompt": "a dog", "steps": 2})", 200)["id"];
  wait_status(kept, "completed");

  auto res = client_->Delete(("/v1/videos/" + done).c_str());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(nlohmann::json::parse(res->body),
            nlohmann::json({{"id", done}, {"object", "video.deleted"}, {"deleted", true}}));
  EXPECT_FALSE(std::filesystem::exists(output));
  for (const std::string& path : {"/v1/videos/" + done, "/v1/videos/" + done + "/content",
                                  "/v1/videos/" + done + "/events"}) {
    const nlohmann::json error = get_json(path, 404);
    expect_error(error, "video_id");
    EXPECT_NE(error["error"]["message"].get<std::string>().find(done), std::string::npos) << error.dump();
  }
  const nlohmann::json list = get_json("/v1/videos", 200);
  ASSERT_EQ(list["data"].size(), 1u) << list.dump();
  EXPECT_EQ(list["data"][0]["id"], kept);
  EXPECT_EQ(get_json("/v1/videos/" + kept, 200)["status"], "completed");  // the other one stays
  res = client_->Delete(("/v1/videos/" + done).c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  expect_error(nlohmann::json::parse(res->body), "video_id");
  EXPECT_NE(res->body.find(done), std::string::npos) << res->body;
}

TEST_F(HttpTest, DeleteQueuedVideoCancelsAndRemovesIt) {
  start({.hold = true});
  const std::string id = post_json("/v1/videos", R"({"prompt": "a cat", "steps": 2})", 200)["id"];
  auto res = client_->Delete(("/v1/videos/" + id).c_str());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const nlohmann::json deleted = nlohmann::json::parse(res->body);
  EXPECT_EQ(deleted["id"], id);
  EXPECT_EQ(deleted["object"], "video.deleted");
  EXPECT_EQ(deleted["deleted"], true);
  expect_error(get_json("/v1/videos/" + id, 404), "video_id");
  expect_error(get_json("/v1/videos/" + id + "/content", 404), "video_id");
  EXPECT_TRUE(get_json("/v1/videos", 200)["data"].empty());
  res = client_->Delete(("/v1/videos/" + id).c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  expect_error(nlohmann::json::parse(res->body), "video_id");
  engine_->release();
  // The engine dropped it: a new job runs.
  wait_status(post_json("/v1/videos", R"({"prompt": "a dog", "steps": 2})", 200)["id"], "completed");
}

TEST_F(HttpTest, BurstBeyondTheQueueGets429WithRetryAfter) {
  start({.hold = true}, /*max_queue=*/4);
  std::vector<std::thread> clients;
  std::atomic<int> accepted{0}, limited{0}, other{0};
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&] {
      httplib::Client cli("127.0.0.1", port_);
      for (int i = 0; i < 4; ++i) {
        const auto res = cli.Post("/v1/videos", R"({"prompt": "burst", "steps": 1})", "application/json");
        if (res && res->status == 200) ++accepted;
        else if (res && res->status == 429 && !res->get_header_value("Retry-After").empty() &&
                 nlohmann::json::parse(res->body)["error"]["type"] == "rate_limit_error")
          ++limited;
        else ++other;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(accepted.load(), 4);
  EXPECT_EQ(limited.load(), 28);
  EXPECT_EQ(other.load(), 0);
  engine_->release();
  const nlohmann::json list = get_json("/v1/videos?limit=100", 200);
  ASSERT_EQ(list["data"].size(), 4u);
  for (const nlohmann::json& v : list["data"]) wait_status(v["id"], "completed");
}

TEST_F(HttpTest, ListIsAnOpenAiListObject) {
  start({.hold = true});
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(post_json("/v1/videos", R"({"prompt": "p"})", 200)["id"]);
  nlohmann::json page = get_json("/v1/videos?limit=2&order=asc", 200);
  EXPECT_EQ(page["object"], "list");
  ASSERT_EQ(page["data"].size(), 2u);
  EXPECT_EQ(page["data"][0]["id"], ids[0]);
  EXPECT_EQ(page["first_id"], ids[0]);
  EXPECT_EQ(page["last_id"], ids[1]);
  EXPECT_EQ(page["has_more"], true);
  page = get_json("/v1/videos?limit=2&order=asc&after=" + ids[1], 200);
  ASSERT_EQ(page["data"].size(), 1u);
  EXPECT_EQ(page["has_more"], false);
  EXPECT_EQ(get_json("/v1/videos", 200)["data"][0]["id"], ids[2]);  // newest first by default
}

// Parses an event stream into (id, event, data) triples, checking the framing.
std::vector<std::tuple<std::string, std::string, nlohmann::json>> parse_sse(const std::string& body) {
  std::vector<std::tuple<std::string, std::string, nlohmann::json>> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const std::size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated frame: " << body.substr(pos);
    if (end == std::string::npos) break;
    const std::string frame = body.substr(pos, end - pos);
    pos = end + 2;
    if (frame[0] == ':') continue;  // keep-alive comment
    std::istringstream lines(frame);
    std::string id_line, event_line, data_line;
    std::getline(lines, id_line);
    std::getline(lines, event_line);
    std::getline(lines, data_line);
    EXPECT_EQ(id_line.rfind("id: ", 0), 0u) << frame;
    EXPECT_EQ(event_line.rfind("event: ", 0), 0u) << frame;
    EXPECT_EQ(data_line.rfind("data: ", 0), 0u) << frame;
    out.emplace_back(id_line.substr(4), event_line.substr(7), nlohmann::json::parse(data_line.substr(6)));
  }
  return out;
}

TEST_F(HttpTest, EventStreamHasOneEventPerStepAndPhase) {
  start({.step_time = std::chrono::milliseconds(5)});
  const std::string id = post_json("/v1/videos", R"({"prompt": "p", "steps": 3})", 200)["id"];
  const auto res = client_->Get(("/v1/videos/" + id + "/events").c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  const auto events = parse_sse(res->body);
  // queued, encoding, denoising 1 (phase), 2, 3 (steps), decoding, completed.
  ASSERT_EQ(events.size(), 7u) << res->body;
  std::vector<std::string> kinds;
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(std::get<0>(events[i]), std::to_string(i));
    kinds.push_back(std::get<1>(events[i]) + ":" + std::get<2>(events[i])["phase"].get<std::string>());
    EXPECT_EQ(std::get<2>(events[i])["id"], id);
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"phase:queued", "phase:encoding", "phase:denoising",
                                             "step:denoising", "step:denoising", "phase:decoding",
                                             "phase:completed"}));
  EXPECT_EQ(std::get<2>(events[4])["step"], 3);
  EXPECT_EQ(std::get<2>(events[4])["decode_dop"], 0);  // no decode group while denoising
  EXPECT_EQ(std::get<2>(events[5])["decode_dop"], 1);
  EXPECT_EQ(std::get<2>(events[5])["decode_devices"], nlohmann::json::array({"cpu:0"}));
  EXPECT_EQ(std::get<2>(events.back())["status"], "completed");
  // A reconnecting client gets what it missed only.
  httplib::Headers last = {{"Last-Event-ID", "4"}};
  const auto again = client_->Get(("/v1/videos/" + id + "/events").c_str(), last);
  ASSERT_TRUE(again);
  EXPECT_EQ(parse_sse(again->body).size(), 2u);
}

TEST_F(HttpTest, EventStreamOfAJobFinishedBeforeARestartIsItsFinalState) {
  std::filesystem::create_directories(dir_.path() / "outputs");
  {
    JobStore store(dir_.path() / "jobs.db");
    store.put(testing::stored_job(dir_.path(), 1, runtime::JobPhase::kCompleted, "video_old"));
  }
  start();
  const auto res = client_->Get("/v1/videos/video_old/events");
  ASSERT_TRUE(res);
  const auto events = parse_sse(res->body);
  ASSERT_EQ(events.size(), 1u) << res->body;
  EXPECT_EQ(std::get<1>(events[0]), "phase");
  EXPECT_EQ(std::get<2>(events[0])["status"], "completed");
}

TEST_F(HttpTest, MetricsHealthAndModels) {
  start();
  wait_status(post_json("/v1/videos", R"({"prompt": "p", "steps": 1})", 200)["id"], "completed");
  const auto res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_NE(res->body.find("ditserve_requests{state=\"completed\"} 1\n"), std::string::npos) << res->body;
  EXPECT_NE(res->body.find("ditserve_device_busy_fraction{device=\"cpu:0\"} 0.25\n"), std::string::npos);
  EXPECT_NE(res->body.find("ditserve_phase_seconds_count{phase=\"total\"} 1\n"), std::string::npos);
  const nlohmann::json models = get_json("/v1/models", 200);
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(get_json("/v1/models/tiny", 200)["object"], "model");
  expect_error(get_json("/v1/models/sora-2", 404), "model");
}

TEST_F(HttpTest, ImagesAsBase64OrUrl) {
  start();
  const nlohmann::json b64 =
      post_json("/v1/images/generations", R"({"prompt": "a cat", "size": "16x16", "steps": 1})", 200);
  ASSERT_EQ(b64["data"].size(), 1u);
  const std::string id = b64["id"];
  EXPECT_EQ(id.rfind("img_", 0), 0u);
  EXPECT_EQ(b64["data"][0]["b64_json"], "RkFLRSBpbWdf" + b64["data"][0]["b64_json"].get<std::string>().substr(12));
  const nlohmann::json url = post_json(
      "/v1/images/generations", R"({"prompt": "a cat", "size": "16x16", "steps": 1, "response_format": "url"})", 200);
  const std::string link = url["data"][0]["url"];
  const std::string path = link.substr(link.find("/v1/"));
  const auto png = client_->Get(path.c_str());
  ASSERT_TRUE(png);
  EXPECT_EQ(png->status, 200);
  EXPECT_EQ(png->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(png->body, "FAKE " + url["id"].get<std::string>());
  expect_error(post_json("/v1/images/generations", R"({"prompt": "a cat", "n": 3})", 400), "n");
  expect_error(post_json("/v1/images/generations", R"({"prompt": "fail", "steps": 1})", 500), "");
}

// A burst of new connections must not overflow the listen queue (cpp-httplib's backlog
// is 5; an overflow costs a client a 1 s SYN retry). `ss` shows a listener's backlog as
// its Send-Q.
TEST_F(HttpTest, ListenBacklogIsDeep) {
  start();
  FILE* pipe = ::popen(("ss -ltnH 'sport = :" + std::to_string(port_) + "' 2>/dev/null").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char line[512] = {};
  const bool got = std::fgets(line, sizeof(line), pipe) != nullptr;
  ::pclose(pipe);
  if (!got) GTEST_SKIP() << "ss (iproute2) is not available";
  std::istringstream fields(line);
  std::string state;
  long recv_q = 0, send_q = 0;
  fields >> state >> recv_q >> send_q;
  EXPECT_GE(send_q, 128) << line;
}

TEST_F(HttpTest, StalledClientIsDroppedAndOthersAreServed) {
  start();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string partial = "POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro";
  ASSERT_EQ(::send(fd, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
  EXPECT_EQ(get_json("/health", 200)["status"], "ok");  // served meanwhile
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[256];
  const auto start = std::chrono::steady_clock::now();
  const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);  // the server gives up on it (read timeout 1 s)
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  EXPECT_LE(n, static_cast<ssize_t>(sizeof(buf)));
  ::close(fd);
  EXPECT_EQ(get_json("/health", 200)["status"], "ok");
}

}  // namespace
}  // namespace ditserve::server
