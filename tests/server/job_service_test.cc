// JobService over the fake engine: jobs run to completion, admission control, delete
// (finished, queued, running, racing the engine's events), restart recovery with jobs in
// every state, shutdown keeping running jobs resumable.

#include "server/job_service.h"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "fake_engine.h"
#include "server_test_util.h"

namespace ditserve::server {
namespace {

using runtime::JobPhase;
using testing::FakeEngine;
using testing::TempDataDir;

GenerationParams params(const std::string& prompt = "a cat", int steps = 3) {
  GenerationParams p;
  p.model = "tiny";
  p.request.prompt = prompt;
  p.request.steps = steps;
  return p;
}

// Options storing under `data`, the others at their defaults.
ServiceOptions stored_in(const std::filesystem::path& data) {
  ServiceOptions options;
  options.data_dir = data;
  return options;
}

// Polls until the job is terminal (the fake engine takes a few ms per job).
Job wait_terminal(const JobService& service, const std::string& id, JobKind kind = JobKind::kVideo) {
  for (int i = 0; i < 2000; ++i) {
    const Job job = service.get(id, kind);
    if (is_terminal_phase(job.progress.phase)) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ADD_FAILURE() << id << " did not finish";
  return service.get(id, kind);
}

// An engine and a service over it, torn down in the order the server uses: the engine
// stops (no more events) before the service goes away.
struct Server {
  explicit Server(const std::filesystem::path& data, FakeEngine::Options o = {}, std::size_t max_queue = 64)
      : engine(std::make_unique<FakeEngine>(o)) {
    ServiceOptions options = stored_in(data);
    options.max_queue = max_queue;
    service = std::make_unique<JobService>(*engine, options);
  }
  ~Server() {
    service->begin_shutdown();
    engine->shutdown();
  }
  std::unique_ptr<FakeEngine> engine;
  std::unique_ptr<JobService> service;
};

TEST(JobService, RunsAJobToCompletionAndPersistsIt) {
  TempDataDir dir("service_complete");
  Server s(dir.path());
  const Job created = s.service->create(params(), JobKind::kVideo);
  EXPECT_EQ(created.spec.id.rfind("video_", 0), 0u);
  EXPECT_EQ(created.spec.output, dir.path() / "outputs" / (created.spec.id + ".mp4"));
  EXPECT_EQ(created.spec.state_file, dir.path() / "state" / (created.spec.id + ".state"));
  const Job done = wait_terminal(*s.service, created.spec.id);
  EXPECT_EQ(done.progress.phase, JobPhase::kCompleted);
  EXPECT_EQ(done.progress.step, 3);
  EXPECT_TRUE(done.completed_at.has_value());
  EXPECT_EQ(s.service->output(created.spec.id, JobKind::kVideo), created.spec.output);
  EXPECT_FALSE(std::filesystem::exists(created.spec.state_file));
  JobStore store(dir.path() / "jobs.db");
  EXPECT_EQ(store.get(created.spec.id)->progress.phase, JobPhase::kCompleted);
}

// The decode group as the engine reports it: kept with the job, persisted at the phase
// change, counted by /metrics as the DoP a decoding job holds; when that group loses a
// device the job holds none until its decode starts again on another group.
TEST(JobService, KeepsTheDecodeGroupTheEngineReports) {
  TempDataDir dir("service_decode_group");
  Server s(dir.path(), {.hold = true});  // the fake never runs it: the test plays the engine
  const std::string id = s.service->create(params("a cat", 2), JobKind::kVideo).spec.id;
  runtime::JobProgress p;
  p.id = id;
  p.phase = JobPhase::kDecoding;
  p.step = p.total_steps = 2;
  p.dop = 1;
  p.devices = {"cpu:0"};
  p.decode_dop = 2;
  p.decode_devices = {"cpu:0", "cpu:1"};
  s.engine->report(p);
  Job job = s.service->get(id, JobKind::kVideo);
  EXPECT_EQ(job.progress.decode_dop, 2);
  EXPECT_EQ(job.progress.decode_devices, p.decode_devices);
  EXPECT_EQ(JobStore(dir.path() / "jobs.db").get(id)->progress.decode_devices, p.decode_devices);
  std::string metrics = s.service->metrics_text();
  EXPECT_NE(metrics.find("ditserve_running_jobs_by_dop{dop=\"2\"} 1\n"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("ditserve_running_jobs_by_dop{dop=\"1\"}"), std::string::npos) << metrics;

  // cpu:1 fails mid-decode; the decode starts again on cpu:2 and cpu:3.
  p.decode_dop = 0;
  p.decode_devices.clear();
  s.engine->report(p);
  EXPECT_EQ(s.service->get(id, JobKind::kVideo).progress.decode_dop, 0);
  metrics = s.service->metrics_text();
  EXPECT_EQ(metrics.find("ditserve_running_jobs_by_dop{"), std::string::npos) << metrics;
  p.decode_dop = 2;
  p.decode_devices = {"cpu:2", "cpu:3"};
  s.engine->report(p);
  EXPECT_EQ(s.service->get(id, JobKind::kVideo).progress.decode_devices, p.decode_devices);
  p.phase = JobPhase::kCompleted;
  s.engine->report(p);
  EXPECT_EQ(JobStore(dir.path() / "jobs.db").get(id)->progress.decode_devices, p.decode_devices);
  std::vector<std::string> types;
  for (const JobEvent& e : s.service->events().wait(id, 0, std::chrono::milliseconds(0))) types.push_back(e.type);
  // queued, decoding on cpu:0-1, on none, on cpu:2-3, completed
  EXPECT_EQ(types, (std::vector<std::string>(5, "phase")));
}

TEST(JobService, FullQueueAnswers429WithRetryAfter) {
  TempDataDir dir("service_429");
  Server s(dir.path(), {.hold = true}, /*max_queue=*/3);
  for (int i = 0; i < 3; ++i) s.service->create(params(), JobKind::kVideo);
  int rejected = 0;
  for (int i = 0; i < 5; ++i) {
    try {
      s.service->create(params(), JobKind::kVideo);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 429);
      EXPECT_EQ(e.type, "rate_limit_error");
      ASSERT_TRUE(e.retry_after_s.has_value());
      EXPECT_GE(*e.retry_after_s, 1);
      ++rejected;
    }
  }
  EXPECT_EQ(rejected, 5);
  EXPECT_EQ(s.engine->submitted().size(), 3u);  // the refused ones never reached the engine
  s.engine->release();
  const JobPage page = s.service->list(JobKind::kVideo, 100, std::nullopt, true);
  ASSERT_EQ(page.jobs.size(), 3u);
  for (const Job& j : page.jobs) EXPECT_EQ(wait_terminal(*s.service, j.spec.id).progress.phase, JobPhase::kCompleted);
  EXPECT_EQ(s.service->queued(), 0u);
  s.service->create(params(), JobKind::kVideo);  // room again
  EXPECT_NE(s.service->metrics_text().find("ditserve_requests_rejected_total{reason=\"queue_full\"} 5"),
            std::string::npos);
}

TEST(JobService, RejectIfLateUsesTheEngineEstimate) {
  TempDataDir dir("service_late");
  Server s(dir.path(), {.estimate_s = 5.0});
  GenerationParams p = params();
  p.deadline_s = 1.0;
  p.reject_if_late = true;
  try {
    s.service->create(p, JobKind::kVideo);
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 422);
    EXPECT_EQ(e.param, "deadline_ms");
  }
  p.deadline_s = 10.0;
  EXPECT_NO_THROW(s.service->create(p, JobKind::kVideo));
  p.reject_if_late = false;
  p.deadline_s = 1.0;  // late, but the client did not ask to be refused
  EXPECT_NO_THROW(s.service->create(p, JobKind::kVideo));
}

TEST(JobService, EngineRefusalIsA400AndLeavesNoJob) {
  TempDataDir dir("service_refused");
  Server s(dir.path());
  try {
    s.service->create(params("refuse"), JobKind::kVideo);
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "prompt");
  }
  EXPECT_TRUE(s.service->list(JobKind::kVideo, 10, std::nullopt, true).jobs.empty());
  EXPECT_TRUE(JobStore(dir.path() / "jobs.db").load_all().empty());
  EXPECT_EQ(s.service->queued(), 0u);
}

// The ApiError `call` throws: a 404 naming video_id and `id`.
template <typename Call>
void expect_not_found(Call call, const std::string& id) {
  try {
    call();
    ADD_FAILURE() << "no error for " << id;
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 404) << e.what();
    EXPECT_EQ(e.param, "video_id");
    EXPECT_NE(std::string(e.what()).find(id), std::string::npos) << e.what();
  }
}

// Nothing of the job is left: not in the API, the store, the event log or the data directory.
void expect_gone(const JobService& service, const std::filesystem::path& data, const Job& job) {
  const std::string& id = job.spec.id;
  expect_not_found([&] { service.get(id, JobKind::kVideo); }, id);
  expect_not_found([&] { service.output(id, JobKind::kVideo); }, id);
  for (const Job& listed : service.list(JobKind::kVideo, 100, std::nullopt, true).jobs) EXPECT_NE(listed.spec.id, id);
  EXPECT_FALSE(JobStore(data / "jobs.db").get(id).has_value()) << id;
  EXPECT_TRUE(service.events().wait(id, 0, std::chrono::milliseconds(0)).empty()) << id;
  EXPECT_FALSE(std::filesystem::exists(job.spec.output)) << job.spec.output;
  EXPECT_FALSE(std::filesystem::exists(job.spec.state_file)) << job.spec.state_file;
}

TEST(JobService, DeleteFinishedJobRemovesRecordAndOutput) {
  TempDataDir dir("service_delete_finished");
  Server s(dir.path());
  const Job done = wait_terminal(*s.service, s.service->create(params(), JobKind::kVideo).spec.id);
  const Job failed = wait_terminal(*s.service, s.service->create(params("fail"), JobKind::kVideo).spec.id);
  const Job kept = wait_terminal(*s.service, s.service->create(params(), JobKind::kVideo).spec.id);
  ASSERT_EQ(done.progress.phase, JobPhase::kCompleted);
  ASSERT_EQ(failed.progress.phase, JobPhase::kFailed);
  ASSERT_TRUE(std::filesystem::exists(done.spec.output));

  s.service->remove(done.spec.id, JobKind::kVideo);
  expect_gone(*s.service, dir.path(), done);
  s.service->remove(failed.spec.id, JobKind::kVideo);
  expect_gone(*s.service, dir.path(), failed);
  // A second delete, an unknown id, or an id of another kind: 404 naming it.
  expect_not_found([&] { s.service->remove(done.spec.id, JobKind::kVideo); }, done.spec.id);
  expect_not_found([&] { s.service->remove("video_nope", JobKind::kVideo); }, "video_nope");
  const Job image = wait_terminal(*s.service, s.service->create(params(), JobKind::kImage).spec.id, JobKind::kImage);
  expect_not_found([&] { s.service->remove(image.spec.id, JobKind::kVideo); }, image.spec.id);
  // The others are untouched.
  EXPECT_EQ(s.service->output(kept.spec.id, JobKind::kVideo), kept.spec.output);
  EXPECT_TRUE(std::filesystem::exists(kept.spec.output));
  const std::vector<Job> stored = JobStore(dir.path() / "jobs.db").load_all();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].spec.id, kept.spec.id);
  EXPECT_EQ(stored[1].spec.id, image.spec.id);
}

TEST(JobService, DeleteQueuedJobCancelsItInTheEngine) {
  TempDataDir dir("service_delete_queued");
  Server s(dir.path(), {.hold = true});
  const Job job = s.service->create(params(), JobKind::kVideo);
  EXPECT_EQ(s.service->queued(), 1u);
  s.service->remove(job.spec.id, JobKind::kVideo);
  EXPECT_EQ(s.service->queued(), 0u);
  EXPECT_EQ(s.engine->stats().queued, 0);  // the engine dropped it (the fake settles a queued cancel at once)
  expect_gone(*s.service, dir.path(), job);
  expect_not_found([&] { s.service->remove(job.spec.id, JobKind::kVideo); }, job.spec.id);
}

// The engine stops the job at its next step boundary; until then the job is already gone
// from the API, and once the engine settles it its record and state file go too.
TEST(JobService, DeleteRunningJobCancelsThenRemovesIt) {
  TempDataDir dir("service_delete_running");
  Server s(dir.path(), {.step_time = std::chrono::milliseconds(20)});
  const Job job = s.service->create(params("a cat", 200), JobKind::kVideo);
  while (s.service->get(job.spec.id, JobKind::kVideo).progress.step < 1)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  s.service->remove(job.spec.id, JobKind::kVideo);
  expect_not_found([&] { s.service->get(job.spec.id, JobKind::kVideo); }, job.spec.id);
  expect_not_found([&] { s.service->remove(job.spec.id, JobKind::kVideo); }, job.spec.id);
  JobStore store(dir.path() / "jobs.db");
  for (int i = 0; i < 2000 && store.get(job.spec.id); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  expect_gone(*s.service, dir.path(), job);
  // Its device is free again: the next job runs to completion.
  const Job next = s.service->create(params(), JobKind::kVideo);
  EXPECT_EQ(wait_terminal(*s.service, next.spec.id).progress.phase, JobPhase::kCompleted);
}

// An engine the test drives by hand: it records submissions and cancels, answers cancel()
// with `cancel_answer`, and emits only what the test reports.
class ScriptedEngine : public runtime::Engine {
 public:
  std::vector<std::string> models() const override { return {"tiny"}; }
  void submit(const runtime::JobSpec& job) override {
    submitted.push_back(job.id);
    if (during_submit) during_submit(job);
  }
  bool cancel(const std::string& id) override {
    cancelled.push_back(id);
    return cancel_answer;
  }
  void set_listener(std::function<void(const runtime::JobProgress&)> l) override { listener = std::move(l); }
  runtime::EngineStats stats() const override { return {}; }
  double estimate_latency_s(const runtime::JobSpec&) const override { return 1; }
  void shutdown() override {}

  void report(const std::string& id, JobPhase phase, int step = 0) {
    runtime::JobProgress p;
    p.id = id;
    p.phase = phase;
    p.step = step;
    p.total_steps = 3;
    listener(p);
  }

  bool cancel_answer = true;
  std::function<void(const runtime::JobSpec&)> during_submit;
  std::vector<std::string> submitted;
  std::vector<std::string> cancelled;
  std::function<void(const runtime::JobProgress&)> listener;
};

// The engine was decoding when the DELETE came: it writes the output and reports the job
// completed after the deletion; that file goes too, with the record kept until then.
TEST(JobService, OutputWrittenAfterTheDeleteIsRemoved) {
  TempDataDir dir("service_delete_late_output");
  ScriptedEngine engine;
  JobService service(engine, stored_in(dir.path()));
  const Job job = service.create(params(), JobKind::kVideo);
  engine.report(job.spec.id, JobPhase::kDecoding, 3);
  std::ofstream(job.spec.state_file) << 3;
  service.remove(job.spec.id, JobKind::kVideo);
  EXPECT_EQ(engine.cancelled, std::vector<std::string>{job.spec.id});
  expect_not_found([&] { service.get(job.spec.id, JobKind::kVideo); }, job.spec.id);
  // Marked in the store until the engine lets go.
  const std::optional<Job> marked = JobStore(dir.path() / "jobs.db").get(job.spec.id);
  ASSERT_TRUE(marked.has_value());
  EXPECT_TRUE(marked->delete_requested);
  engine.report(job.spec.id, JobPhase::kDecoding, 3);  // not terminal: nothing happens yet
  EXPECT_TRUE(JobStore(dir.path() / "jobs.db").get(job.spec.id).has_value());
  std::ofstream(job.spec.output) << "written after the delete";
  engine.report(job.spec.id, JobPhase::kCompleted, 3);
  expect_gone(service, dir.path(), job);
  engine.report(job.spec.id, JobPhase::kCompleted, 3);  // a repeated event is harmless
  expect_gone(service, dir.path(), job);
}

// The engine finished the job just before the DELETE (cancel() answers false) and its
// completed event arrives after it: the delete removes everything, the late event nothing.
TEST(JobService, TerminalEventRacingTheDeleteLeavesNothing) {
  TempDataDir dir("service_delete_race");
  ScriptedEngine engine;
  JobService service(engine, stored_in(dir.path()));
  const Job job = service.create(params(), JobKind::kVideo);
  const Job other = service.create(params(), JobKind::kVideo);
  engine.report(job.spec.id, JobPhase::kDenoising, 1);
  std::ofstream(job.spec.output) << "finished";
  engine.cancel_answer = false;
  service.remove(job.spec.id, JobKind::kVideo);
  expect_gone(service, dir.path(), job);
  engine.report(job.spec.id, JobPhase::kCompleted, 3);
  expect_gone(service, dir.path(), job);
  EXPECT_EQ(service.get(other.spec.id, JobKind::kVideo).progress.phase, JobPhase::kQueued);
  EXPECT_EQ(service.queued(), 1u);
  EXPECT_TRUE(JobStore(dir.path() / "jobs.db").get(other.spec.id).has_value());
}

// A DELETE that arrives while create() is still handing the job to the engine (the id
// shows in a list by then): the engine is told to cancel once it has the job.
TEST(JobService, DeleteDuringSubmissionCancelsOnceSubmitted) {
  TempDataDir dir("service_delete_submitting");
  ScriptedEngine engine;
  JobService service(engine, stored_in(dir.path()));
  engine.during_submit = [&](const runtime::JobSpec& spec) {
    service.remove(spec.id, JobKind::kVideo);
    EXPECT_TRUE(engine.cancelled.empty());  // the engine does not know the job yet
  };
  const Job job = service.create(params(), JobKind::kVideo);
  EXPECT_EQ(engine.cancelled, std::vector<std::string>{job.spec.id});
  expect_not_found([&] { service.get(job.spec.id, JobKind::kVideo); }, job.spec.id);
  EXPECT_EQ(service.queued(), 0u);
  engine.report(job.spec.id, JobPhase::kCancelled);
  expect_gone(service, dir.path(), job);
}

// A deleted job stays deleted across restarts: one settled before the restart is not in
// the store; one the process stopped before settling (the engine never reported it) is
// purged at start-up with its files, and neither is given to the engine again.
TEST(JobService, DeletedJobsDoNotComeBackAfterARestart) {
  TempDataDir dir("service_delete_restart");
  Job done, running, kept;
  {
    Server s(dir.path(), {.step_time = std::chrono::milliseconds(20)});
    done = wait_terminal(*s.service, s.service->create(params(), JobKind::kVideo).spec.id);
    kept = wait_terminal(*s.service, s.service->create(params(), JobKind::kVideo).spec.id);
    s.service->remove(done.spec.id, JobKind::kVideo);
  }
  {
    ScriptedEngine engine;
    JobService service(engine, stored_in(dir.path()));
    EXPECT_EQ(service.recover().completed, 1);
    running = service.create(params(), JobKind::kVideo);
    engine.report(running.spec.id, JobPhase::kDenoising, 1);
    std::ofstream(running.spec.state_file) << 1;
    service.remove(running.spec.id, JobKind::kVideo);
  }  // stops (as a crash would) before the engine reported the job cancelled
  ASSERT_TRUE(JobStore(dir.path() / "jobs.db").get(running.spec.id).has_value());
  ASSERT_TRUE(std::filesystem::exists(running.spec.state_file));
  Server again(dir.path());
  const RecoveryReport report = again.service->recover();
  EXPECT_EQ(report.completed, 1);
  EXPECT_EQ(report.resubmitted, 0);
  EXPECT_EQ(report.deleted, 1);
  EXPECT_TRUE(again.engine->submitted().empty());
  expect_gone(*again.service, dir.path(), done);
  expect_gone(*again.service, dir.path(), running);
  EXPECT_EQ(again.service->output(kept.spec.id, JobKind::kVideo), kept.spec.output);
  ASSERT_EQ(JobStore(dir.path() / "jobs.db").load_all().size(), 1u);
}

TEST(JobService, ListsPagesInBothOrders) {
  TempDataDir dir("service_list");
  Server s(dir.path(), {.hold = true});
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(s.service->create(params(), JobKind::kVideo).spec.id);
  s.service->create(params(), JobKind::kImage);  // not a video: not listed
  JobPage page = s.service->list(JobKind::kVideo, 2, std::nullopt, true);
  ASSERT_EQ(page.jobs.size(), 2u);
  EXPECT_EQ(page.jobs[0].spec.id, ids[0]);
  EXPECT_TRUE(page.has_more);
  page = s.service->list(JobKind::kVideo, 10, ids[1], true);
  ASSERT_EQ(page.jobs.size(), 3u);
  EXPECT_EQ(page.jobs[0].spec.id, ids[2]);
  EXPECT_FALSE(page.has_more);
  page = s.service->list(JobKind::kVideo, 2, std::nullopt, false);
  EXPECT_EQ(page.jobs[0].spec.id, ids[4]);
  page = s.service->list(JobKind::kVideo, 10, ids[2], false);
  ASSERT_EQ(page.jobs.size(), 2u);
  EXPECT_EQ(page.jobs[0].spec.id, ids[1]);
  EXPECT_THROW(s.service->list(JobKind::kVideo, 10, std::string("video_nope"), true), ApiError);
}

TEST(JobService, RestartRecoversJobsInEveryState) {
  TempDataDir dir("service_recover");
  std::filesystem::create_directories(dir.path() / "outputs");
  std::filesystem::create_directories(dir.path() / "state");
  {
    JobStore store(dir.path() / "jobs.db");
    using testing::stored_job;
    store.put(stored_job(dir.path(), 1, JobPhase::kQueued, "video_queued"));
    store.put(stored_job(dir.path(), 2, JobPhase::kEncoding, "video_encoding"));
    store.put(stored_job(dir.path(), 3, JobPhase::kDenoising, "video_denoising"));
    store.put(stored_job(dir.path(), 4, JobPhase::kDecoding, "video_decoding"));
    store.put(stored_job(dir.path(), 5, JobPhase::kCompleted, "video_completed"));
    store.put(stored_job(dir.path(), 6, JobPhase::kFailed, "video_failed"));
    store.put(stored_job(dir.path(), 7, JobPhase::kCancelled, "video_cancelled"));
    Job cancel_pending = stored_job(dir.path(), 8, JobPhase::kDenoising, "video_cancel_pending");
    cancel_pending.cancel_requested = true;
    store.put(cancel_pending);
    Job late = stored_job(dir.path(), 9, JobPhase::kQueued, "video_deadline");
    late.deadline_s = 30;
    late.created_at = 1;  // long ago: the deadline has passed
    store.put(late);
    std::ofstream(dir.path() / "outputs" / "video_completed.mp4") << "done before the crash";
    std::ofstream(dir.path() / "state" / "video_denoising.state") << 2;  // 2 of 4 steps durable
  }
  Server s(dir.path());
  const RecoveryReport report = s.service->recover();
  EXPECT_EQ(report.completed, 1);
  EXPECT_EQ(report.resubmitted, 5);
  EXPECT_EQ(report.cancelled, 2);
  EXPECT_EQ(report.failed, 1);

  std::set<std::string> resubmitted;
  for (const runtime::JobSpec& spec : s.engine->submitted()) {
    resubmitted.insert(spec.id);
    EXPECT_EQ(spec.state_file, dir.path() / "state" / (spec.id + ".state"));
    if (spec.id == "video_deadline") {
      EXPECT_GT(spec.deadline_s, 0);
      EXPECT_LT(spec.deadline_s, 1);
    }
  }
  EXPECT_EQ(resubmitted, (std::set<std::string>{"video_queued", "video_encoding", "video_denoising",
                                                 "video_decoding", "video_deadline"}));
  for (const std::string& id : resubmitted)
    EXPECT_EQ(wait_terminal(*s.service, id).progress.phase, JobPhase::kCompleted) << id;
  EXPECT_EQ(s.engine->resumed_from().at("video_denoising"), 2);
  EXPECT_EQ(s.engine->resumed_from().at("video_queued"), 0);
  EXPECT_EQ(s.service->get("video_completed", JobKind::kVideo).progress.phase, JobPhase::kCompleted);
  EXPECT_EQ(s.service->output("video_completed", JobKind::kVideo), dir.path() / "outputs" / "video_completed.mp4");
  EXPECT_EQ(s.service->get("video_failed", JobKind::kVideo).progress.phase, JobPhase::kFailed);
  EXPECT_EQ(s.service->get("video_cancel_pending", JobKind::kVideo).progress.phase, JobPhase::kCancelled);
  // New jobs continue the sequence.
  const Job fresh = s.service->create(params(), JobKind::kVideo);
  EXPECT_EQ(fresh.seq, 10);
}

TEST(JobService, ShutdownLeavesRunningJobsResumable) {
  TempDataDir dir("service_shutdown");
  std::string id;
  {
    Server s(dir.path(), {.step_time = std::chrono::milliseconds(20)});
    id = s.service->create(params("a cat", 100), JobKind::kVideo).spec.id;
    while (s.service->get(id, JobKind::kVideo).progress.step < 2)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }  // begin_shutdown + engine shutdown mid-run
  JobStore store(dir.path() / "jobs.db");
  const Job stored = *store.get(id);
  EXPECT_FALSE(is_terminal_phase(stored.progress.phase));
  EXPECT_TRUE(std::filesystem::exists(stored.spec.state_file));
  Server again(dir.path());
  EXPECT_EQ(again.service->recover().resubmitted, 1);
  EXPECT_EQ(wait_terminal(*again.service, id).progress.phase, JobPhase::kCompleted);
  EXPECT_GE(again.engine->resumed_from().at(id), 2);
}

TEST(JobService, FailedJobsReportTheEngineError) {
  TempDataDir dir("service_failed");
  Server s(dir.path());
  const Job job = wait_terminal(*s.service, s.service->create(params("fail"), JobKind::kVideo).spec.id);
  EXPECT_EQ(job.progress.phase, JobPhase::kFailed);
  EXPECT_EQ(job.progress.error, "fake device failure");
}

}  // namespace
}  // namespace ditserve::server
