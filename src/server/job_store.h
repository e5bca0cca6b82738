#pragma once
// Durable job metadata in one SQLite file: what each job asked for and the state it last
// reached (phase changes, not every step: a resumed job restarts from the engine's state
// file). WAL journal with synchronous=NORMAL: a committed write survives a crash of the
// process (kill -9), which is what "nothing accepted is lost" needs; a power loss may
// lose the last commits. Thread-safe (one connection behind a mutex).
// The table has no schema version: fields added after it was first written live in its
// JSON columns (spec, timings), where a missing key reads back as unset, so a store
// written by an older build opens unchanged.

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/job.h"

struct sqlite3;

namespace ditserve::server {

class JobStore {
 public:
  // Opens (creating when missing) the database at `path`. Throws ditserve::Error naming
  // the file when SQLite cannot open it.
  explicit JobStore(const std::filesystem::path& path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Inserts the job or replaces the stored one with the same id.
  void put(const Job& job);
  // Deletes the job's row (nothing when there is none).
  void remove(const std::string& id);
  std::optional<Job> get(const std::string& id) const;
  // Every job, in seq order.
  std::vector<Job> load_all() const;
  std::int64_t max_seq() const;

 private:
  void exec(const char* sql) const;

  mutable std::mutex mutex_;
  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
};

}  // namespace ditserve::server
