// The SQLite job store: every field round-trips, and the file outlives the process's view.

#include "server/job_store.h"

#include <sqlite3.h>

#include <gtest/gtest.h>

#include "pipeline/flow_matching.h"
#include "server_test_util.h"
#include "tensor/error.h"

namespace ditserve::server {
namespace {

using runtime::JobPhase;
using testing::stored_job;
using testing::TempDataDir;

TEST(JobStore, RoundTripsEachOutputFormat) {
  TempDataDir dir("store_formats");
  JobStore store(dir.path() / "jobs.db");
  const runtime::OutputFormat formats[] = {runtime::OutputFormat::kMp4, runtime::OutputFormat::kPng,
                                           runtime::OutputFormat::kY4m};
  for (std::size_t i = 0; i < 3; ++i) {
    Job job = stored_job(dir.path(), static_cast<std::int64_t>(i + 1), JobPhase::kQueued,
                         "video_" + std::to_string(i));
    job.spec.format = formats[i];
    store.put(job);
    const std::optional<Job> back = store.get(job.spec.id);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->spec.format, formats[i]) << i;
  }
}

TEST(JobStore, RoundTripsEveryField) {
  TempDataDir dir("store_roundtrip");
  Job job = stored_job(dir.path(), 7, JobPhase::kFailed, "video_a");
  job.kind = JobKind::kImage;
  job.spec.format = runtime::OutputFormat::kPng;
  job.deadline_s = 12.5;
  job.cancel_requested = true;
  job.progress.error = "device lost";
  job.progress.devices = {"cpu:0", "cpu:1"};
  job.progress.dop = 2;
  job.progress.decode_dop = 3;
  job.progress.decode_devices = {"cpu:2", "cpu:0", "cpu:1"};  // the leader first
  job.progress.encode_s = 0.25;
  job.progress.denoise_s = 1.5;
  job.spec.model = "tiny-wan";
  job.spec.request.negative_prompt = "blurry, 'quoted', \"static\"";
  job.spec.request.sampler = SamplerKind::euler;
  job.spec.request.shift = 3.25;
  {
    JobStore store(dir.path() / "jobs.db");
    store.put(job);
  }
  JobStore store(dir.path() / "jobs.db");  // reopened: what was committed is there
  const std::optional<Job> back = store.get("video_a");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->seq, 7);
  EXPECT_EQ(back->kind, JobKind::kImage);
  EXPECT_EQ(back->spec.model, "tiny-wan");
  EXPECT_EQ(back->spec.request.negative_prompt, job.spec.request.negative_prompt);
  EXPECT_EQ(back->spec.request.sampler, std::optional<SamplerKind>(SamplerKind::euler));
  EXPECT_EQ(back->spec.request.shift, std::optional<double>(3.25));
  EXPECT_EQ(back->spec.request.prompt, "prompt of video_a");
  EXPECT_EQ(back->spec.request.frames, 9);
  EXPECT_EQ(back->spec.request.width, 32);
  EXPECT_EQ(back->spec.request.height, 48);
  EXPECT_EQ(back->spec.request.steps, 4);
  EXPECT_FLOAT_EQ(back->spec.request.guidance, 5.5f);
  EXPECT_EQ(back->spec.request.seed, 1234567890123ull);
  EXPECT_EQ(back->spec.priority, 2);
  EXPECT_EQ(back->spec.format, runtime::OutputFormat::kPng);
  EXPECT_EQ(back->spec.output, job.spec.output);
  EXPECT_EQ(back->spec.state_file, job.spec.state_file);
  EXPECT_DOUBLE_EQ(*back->deadline_s, 12.5);
  EXPECT_DOUBLE_EQ(back->spec.deadline_s, 12.5);
  EXPECT_DOUBLE_EQ(back->created_at, job.created_at);
  EXPECT_DOUBLE_EQ(*back->completed_at, *job.completed_at);
  EXPECT_TRUE(back->cancel_requested);
  EXPECT_EQ(back->progress.phase, JobPhase::kFailed);
  EXPECT_EQ(back->progress.error, "device lost");
  EXPECT_EQ(back->progress.devices, job.progress.devices);
  EXPECT_EQ(back->progress.dop, 2);
  EXPECT_EQ(back->progress.decode_dop, 3);
  EXPECT_EQ(back->progress.decode_devices, job.progress.decode_devices);
  EXPECT_DOUBLE_EQ(back->progress.encode_s, 0.25);
  EXPECT_DOUBLE_EQ(back->progress.denoise_s, 1.5);
  EXPECT_FALSE(store.get("video_b").has_value());
}

TEST(JobStore, KeepsJobsInEveryStateInOrderAndReplacesById) {
  TempDataDir dir("store_states");
  JobStore store(dir.path() / "jobs.db");
  const std::vector<JobPhase> phases = {JobPhase::kQueued,    JobPhase::kEncoding, JobPhase::kDenoising,
                                        JobPhase::kDecoding,  JobPhase::kCompleted, JobPhase::kFailed,
                                        JobPhase::kCancelled};
  for (std::size_t i = 0; i < phases.size(); ++i)
    store.put(stored_job(dir.path(), static_cast<std::int64_t>(10 - i), phases[i], "job" + std::to_string(i)));
  Job again = stored_job(dir.path(), 10, JobPhase::kCompleted, "job0");
  store.put(again);  // job0 finished: same row
  const std::vector<Job> all = store.load_all();
  ASSERT_EQ(all.size(), phases.size());
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].seq, all[i].seq);
  EXPECT_EQ(all.back().spec.id, "job0");
  EXPECT_EQ(all.back().progress.phase, JobPhase::kCompleted);
  EXPECT_EQ(store.max_seq(), 10);
  store.remove("job3");
  EXPECT_EQ(store.load_all().size(), phases.size() - 1);
}

// Unset stays unset (the model's defaults), rather than becoming a value.
TEST(JobStore, UnsetSamplerShiftAndNegativePromptStayUnset) {
  TempDataDir dir("store_unset");
  JobStore store(dir.path() / "jobs.db");
  store.put(stored_job(dir.path(), 1, JobPhase::kQueued, "plain"));
  const Job back = *store.get("plain");
  EXPECT_EQ(back.spec.request.negative_prompt, "");
  EXPECT_FALSE(back.spec.request.sampler.has_value());
  EXPECT_FALSE(back.spec.request.shift.has_value());
}

// A database written before negative_prompt, sampler and shift existed: the same table,
// its spec JSON without those keys. It opens, its jobs load with the model's defaults,
// and new jobs with the fields go into the same file.
TEST(JobStore, OpensAStoreWrittenBeforeTheWanFields) {
  TempDataDir dir("store_old");
  const std::filesystem::path path = dir.path() / "jobs.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string old_spec =
        R"({"kind": "video", "model": "tiny-wan", "prompt": "an old job", "frames": 5, "width": 32,)"
        R"( "height": 32, "steps": 2, "guidance": 5.0, "fps": 16.0, "seed": 9, "priority": 0,)"
        R"( "output": "/tmp/old.mp4", "format": "mp4", "state_file": "/tmp/old.state"})";
    const std::string sql =
        "CREATE TABLE jobs (seq INTEGER NOT NULL UNIQUE, id TEXT PRIMARY KEY, spec TEXT NOT NULL,"
        " phase TEXT NOT NULL, step INTEGER NOT NULL, total_steps INTEGER NOT NULL,"
        " dop INTEGER NOT NULL, created_at REAL NOT NULL, completed_at REAL,"
        " cancel_requested INTEGER NOT NULL, error TEXT NOT NULL, timings TEXT NOT NULL);"
        "INSERT INTO jobs VALUES (3, 'video_old', '" + old_spec +
        "', 'denoising', 1, 2, 1, 1700000000.0, NULL, 0, '', '{}');";
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << error;
    sqlite3_close(db);
  }
  JobStore store(path);
  const std::vector<Job> jobs = store.load_all();
  ASSERT_EQ(jobs.size(), 1u);
  const GenerateRequest& r = jobs[0].spec.request;
  EXPECT_EQ(r.prompt, "an old job");
  EXPECT_EQ(r.negative_prompt, "");
  EXPECT_FALSE(r.sampler.has_value());
  EXPECT_FALSE(r.shift.has_value());
  EXPECT_EQ(jobs[0].progress.phase, JobPhase::kDenoising);

  Job next = stored_job(dir.path(), 4, JobPhase::kQueued, "video_new");
  next.spec.request.negative_prompt = "dark";
  next.spec.request.shift = 2;
  store.put(next);
  EXPECT_EQ(store.get("video_new")->spec.request.negative_prompt, "dark");
  EXPECT_EQ(store.get("video_new")->spec.request.shift, std::optional<double>(2));
  EXPECT_EQ(store.load_all().size(), 2u);
}

// A row written before decode groups were stored: its timings JSON has the step group's
// devices and no decode keys. It reads back with no decode group (0, []), and rewriting
// it in the same file stores one.
TEST(JobStore, OpensAStoreWrittenBeforeDecodeGroups) {
  TempDataDir dir("store_before_decode_groups");
  const std::filesystem::path path = dir.path() / "jobs.db";
  {
    JobStore store(path);  // today's table
    store.put(stored_job(dir.path(), 1, JobPhase::kCompleted, "video_old"));
  }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* sql =
        "UPDATE jobs SET timings = '{\"queued_s\": 0.5, \"encode_s\": 0.25, \"denoise_s\": 2.0,"
        " \"decode_s\": 0.75, \"devices\": [\"cpu:0\", \"cpu:1\"]}' WHERE id = 'video_old'";
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &error), SQLITE_OK) << error;
    sqlite3_close(db);
  }
  JobStore store(path);
  Job old = *store.get("video_old");
  EXPECT_EQ(old.progress.devices, (std::vector<std::string>{"cpu:0", "cpu:1"}));
  EXPECT_DOUBLE_EQ(old.progress.decode_s, 0.75);
  EXPECT_EQ(old.progress.decode_dop, 0);
  EXPECT_TRUE(old.progress.decode_devices.empty());
  old.progress.decode_dop = 1;
  old.progress.decode_devices = {"cpu:1"};
  store.put(old);
  EXPECT_EQ(store.get("video_old")->progress.decode_devices, std::vector<std::string>{"cpu:1"});
}

TEST(JobStore, UnopenableFileIsAnErrorNamingIt) {
  EXPECT_THROW(JobStore("/nonexistent-dir/x/jobs.db"), ditserve::Error);
}

}  // namespace
}  // namespace ditserve::server
