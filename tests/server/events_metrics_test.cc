// SSE framing and the event log; Prometheus text; the video object's mapping of phases.

#include <gtest/gtest.h>

#include <thread>

#include "server/event_hub.h"
#include "server/metrics.h"
#include "server/video_object.h"
#include "server_test_util.h"

namespace ditserve::server {
namespace {

using runtime::JobPhase;

runtime::JobProgress event(const std::string& id, JobPhase phase, int step) {
  runtime::JobProgress p;
  p.id = id;
  p.phase = phase;
  p.step = step;
  p.total_steps = 4;
  return p;
}

TEST(Sse, FrameIsIdEventDataAndABlankLine) {
  EXPECT_EQ(sse_frame(3, "step", R"({"step":2})"), "id: 3\nevent: step\ndata: {\"step\":2}\n\n");
  EXPECT_EQ(std::string(kSseKeepAlive), ": keep-alive\n\n");
}

TEST(EventHub, TypesEventsAndReplaysFromAnIndex) {
  EventHub hub;
  hub.publish(event("a", JobPhase::kQueued, 0));
  hub.publish(event("a", JobPhase::kDenoising, 1));
  hub.publish(event("a", JobPhase::kDenoising, 2));
  hub.publish(event("b", JobPhase::kQueued, 0));
  const std::vector<JobEvent> all = hub.wait("a", 0, std::chrono::milliseconds(0));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].type, "phase");
  EXPECT_EQ(all[1].type, "phase");
  EXPECT_EQ(all[2].type, "step");
  EXPECT_EQ(all[2].index, 2u);
  const std::vector<JobEvent> later = hub.wait("a", 2, std::chrono::milliseconds(0));
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].progress.step, 2);
  EXPECT_TRUE(hub.wait("a", 3, std::chrono::milliseconds(10)).empty());  // timeout
  EXPECT_TRUE(hub.wait("nobody", 0, std::chrono::milliseconds(0)).empty());
}

// A decode that lost a device starts again on another group: that second decoding event
// is a phase event too (only a denoising step after another is a "step").
TEST(EventHub, ADecodeStartedAgainIsAPhaseEvent) {
  EventHub hub;
  hub.publish(event("a", JobPhase::kDenoising, 4));
  hub.publish(event("a", JobPhase::kDecoding, 4));
  hub.publish(event("a", JobPhase::kDecoding, 4));
  hub.publish(event("a", JobPhase::kCompleted, 4));
  std::vector<std::string> types;
  for (const JobEvent& e : hub.wait("a", 0, std::chrono::milliseconds(0))) types.push_back(e.type);
  EXPECT_EQ(types, (std::vector<std::string>{"phase", "phase", "phase", "phase"}));
}

TEST(EventHub, WaitersWakeOnPublishAndOnClose) {
  EventHub hub;
  std::thread publisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    hub.publish(event("a", JobPhase::kEncoding, 0));
  });
  const auto got = hub.wait("a", 0, std::chrono::seconds(10));
  publisher.join();
  ASSERT_EQ(got.size(), 1u);
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    hub.close();
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(hub.wait("a", 1, std::chrono::seconds(10)).empty());
  closer.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(hub.closed());
}

TEST(EventHub, DropsTheLogsOfTheOldestFinishedJobs) {
  EventHub hub(/*max_per_job=*/3, /*max_finished=*/2);
  for (int step = 0; step < 5; ++step) hub.publish(event("long", JobPhase::kDenoising, step));
  const auto kept = hub.wait("long", 0, std::chrono::milliseconds(0));
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept.front().index, 2u);  // the last three, numbered as published
  for (const char* id : {"a", "b", "c"}) {
    hub.publish(event(id, JobPhase::kQueued, 0));
    hub.publish(event(id, JobPhase::kCompleted, 4));
  }
  EXPECT_TRUE(hub.wait("a", 0, std::chrono::milliseconds(0)).empty());
  EXPECT_EQ(hub.wait("b", 0, std::chrono::milliseconds(0)).size(), 2u);
  EXPECT_EQ(hub.wait("c", 0, std::chrono::milliseconds(0)).size(), 2u);
  EXPECT_EQ(hub.wait("long", 0, std::chrono::milliseconds(0)).size(), 3u);  // not finished: kept
}

TEST(Metrics, RendersPrometheusText) {
  Metrics m;
  runtime::JobProgress done = event("a", JobPhase::kCompleted, 4);
  done.queued_s = 0.02;
  done.encode_s = 0.3;
  done.denoise_s = 2;
  done.decode_s = 0.7;
  m.observe_finished(done, 3.0, 5.0);   // met its deadline
  m.observe_finished(done, 9.0, 5.0);   // missed it
  m.observe_finished(done, 1.0, std::nullopt);
  m.count_rejected("queue_full");
  MetricsSnapshot now;
  now.requests_by_state = {{"queued", 2}, {"in_progress", 1}, {"completed", 3}, {"failed", 0}};
  now.running_by_dop = {{2, 1}};
  now.engine.queued = 2;
  now.engine.running = 1;
  now.engine.devices = {{"cpu:0", 0.5, "a"}, {"cpu:1", 0, ""}};
  const std::string text = m.render(now);
  for (const std::string line :
       {"# TYPE ditserve_queue_length gauge", "ditserve_queue_length 2",
        "ditserve_requests{state=\"completed\"} 3", "ditserve_requests{state=\"failed\"} 0",
        "ditserve_device_busy_fraction{device=\"cpu:0\"} 0.5",
        "ditserve_running_jobs_by_dop{dop=\"2\"} 1",
        "ditserve_requests_rejected_total{reason=\"queue_full\"} 1",
        "# TYPE ditserve_phase_seconds histogram",
        "ditserve_phase_seconds_bucket{phase=\"denoise\",le=\"1\"} 0",
        "ditserve_phase_seconds_bucket{phase=\"denoise\",le=\"2.5\"} 3",
        "ditserve_phase_seconds_bucket{phase=\"denoise\",le=\"+Inf\"} 3",
        "ditserve_phase_seconds_count{phase=\"total\"} 3", "ditserve_phase_seconds_sum{phase=\"total\"} 13",
        "ditserve_slo_total{result=\"met\"} 1", "ditserve_slo_total{result=\"missed\"} 1",
        "ditserve_slo_attainment 0.5"}) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\n" << text;
  }
  // Every non-comment line is "name{labels} value" or "name value".
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    EXPECT_EQ(line.rfind("ditserve_", 0), 0u) << line;
    EXPECT_NE(line.find(' '), std::string::npos) << line;
  }
}

TEST(VideoObject, MapsPhasesToOpenAiStatusAndProgress) {
  Job job = testing::stored_job("/tmp", 1, JobPhase::kQueued, "video_x");
  EXPECT_EQ(video_object(job)["status"], "queued");
  EXPECT_EQ(video_object(job)["progress"], 0);
  job.progress.phase = JobPhase::kDenoising;
  job.progress.step = 2;
  nlohmann::json v = video_object(job);
  EXPECT_EQ(v["status"], "in_progress");
  EXPECT_EQ(v["progress"], 50);  // 5 + 90 * 2 / 4
  EXPECT_EQ(v["object"], "video");
  EXPECT_EQ(v["size"], "32x48");
  EXPECT_EQ(v["seconds"], "0.38");  // 9 frames at 24 fps
  EXPECT_EQ(v["model"], "tiny");
  EXPECT_EQ(v["step"], 2);
  EXPECT_EQ(v["decode_dop"], 0);  // no decode group yet
  EXPECT_EQ(v["decode_devices"], nlohmann::json::array());
  EXPECT_TRUE(v["error"].is_null());
  job.progress.phase = JobPhase::kDecoding;
  job.progress.dop = 1;
  job.progress.devices = {"cpu:1"};
  job.progress.decode_dop = 2;
  job.progress.decode_devices = {"cpu:1", "cpu:0"};
  v = video_object(job);
  EXPECT_EQ(v["progress"], 95);
  EXPECT_EQ(v["dop"], 1);  // the last step's group, shown beside the decode's
  EXPECT_EQ(v["decode_dop"], 2);
  EXPECT_EQ(v["decode_devices"], nlohmann::json::array({"cpu:1", "cpu:0"}));
  const nlohmann::json e = event_object(job, job.progress, "phase");
  EXPECT_EQ(e["phase"], "decoding");
  EXPECT_EQ(e["decode_dop"], 2);
  EXPECT_EQ(e["decode_devices"], nlohmann::json::array({"cpu:1", "cpu:0"}));
  EXPECT_EQ(e["devices"], nlohmann::json::array({"cpu:1"}));
  job.progress.phase = JobPhase::kCompleted;
  EXPECT_EQ(video_object(job)["progress"], 100);
  EXPECT_EQ(video_object(job)["status"], "completed");
  job.progress.phase = JobPhase::kCancelled;
  v = video_object(job);
  EXPECT_EQ(v["status"], "failed");
  EXPECT_EQ(v["error"]["code"], "cancelled");
  job.progress.phase = JobPhase::kFailed;
  job.progress.error = "boom";
  EXPECT_EQ(video_object(job)["error"]["message"], "boom");
}

}  // namespace
}  // namespace ditserve::server
