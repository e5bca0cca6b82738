#include "server/job_store.h"

#include <sqlite3.h>

#include "tensor/error.h"

namespace ditserve::server {
namespace {

// Owns a prepared statement.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql, const std::filesystem::path& path) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      throw Error("job store " + path.string() + ": " + sqlite3_errmsg(db));
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  sqlite3_stmt* get() const { return stmt_; }

  void text(int i, const std::string& s) { sqlite3_bind_text(stmt_, i, s.c_str(), -1, SQLITE_TRANSIENT); }
  void integer(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void real(int i, std::optional<double> v) {
    if (v) sqlite3_bind_double(stmt_, i, *v);
    else sqlite3_bind_null(stmt_, i);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

constexpr const char* kColumns =
    "seq, id, spec, phase, step, total_steps, dop, created_at, completed_at, cancel_requested, "
    "error, timings";

std::string column_text(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t == nullptr ? std::string() : reinterpret_cast<const char*>(t);
}

Job read_row(sqlite3_stmt* s) {
  Job job;
  job.seq = sqlite3_column_int64(s, 0);
  job.spec.id = column_text(s, 1);
  spec_from_json(nlohmann::json::parse(column_text(s, 2)), job);
  runtime::JobProgress& p = job.progress;
  p.id = job.spec.id;
  p.phase = phase_from_name(column_text(s, 3));
  p.step = sqlite3_column_int(s, 4);
  p.total_steps = sqlite3_column_int(s, 5);
  p.dop = sqlite3_column_int(s, 6);
  job.created_at = sqlite3_column_double(s, 7);
  if (sqlite3_column_type(s, 8) != SQLITE_NULL) job.completed_at = sqlite3_column_double(s, 8);
  job.cancel_requested = sqlite3_column_int(s, 9) != 0;
  p.error = column_text(s, 10);
  const nlohmann::json t = nlohmann::json::parse(column_text(s, 11));
  p.queued_s = t.value("queued_s", 0.0);
  p.encode_s = t.value("encode_s", 0.0);
  p.denoise_s = t.value("denoise_s", 0.0);
  p.decode_s = t.value("decode_s", 0.0);
  p.devices = t.value("devices", std::vector<std::string>{});
  // Absent from stores written before decode groups were shown: no decode group known.
  p.decode_dop = t.value("decode_dop", 0);
  p.decode_devices = t.value("decode_devices", std::vector<std::string>{});
  // Absent from stores written before DELETE removed jobs: none was being deleted.
  job.delete_requested = t.value("delete_requested", false);
  return job;
}

}  // namespace

JobStore::JobStore(const std::filesystem::path& path) : path_(path) {
  if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw Error("job store " + path.string() + ": " + why);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  exec("CREATE TABLE IF NOT EXISTS jobs ("
       " seq INTEGER NOT NULL UNIQUE, id TEXT PRIMARY KEY, spec TEXT NOT NULL,"
       " phase TEXT NOT NULL, step INTEGER NOT NULL, total_steps INTEGER NOT NULL,"
       " dop INTEGER NOT NULL, created_at REAL NOT NULL, completed_at REAL,"
       " cancel_requested INTEGER NOT NULL, error TEXT NOT NULL, timings TEXT NOT NULL)");
}

JobStore::~JobStore() { sqlite3_close(db_); }

void JobStore::exec(const char* sql) const {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string why = message ? message : "unknown error";
    sqlite3_free(message);
    throw Error("job store " + path_.string() + ": " + why);
  }
}

void JobStore::put(const Job& job) {
  const runtime::JobProgress& p = job.progress;
  // The progress and state beyond the columns, as JSON: a field added later is one more
  // key, so an older store opens unchanged (its rows read back without it) and needs no
  // migration.
  nlohmann::json timings = {{"queued_s", p.queued_s},     {"encode_s", p.encode_s},
                            {"denoise_s", p.denoise_s},   {"decode_s", p.decode_s},
                            {"devices", p.devices},       {"decode_dop", p.decode_dop},
                            {"decode_devices", p.decode_devices}};
  if (job.delete_requested) timings["delete_requested"] = true;
  const std::lock_guard lock(mutex_);
  Statement s(db_,
              "INSERT OR REPLACE INTO jobs (seq, id, spec, phase, step, total_steps, dop, created_at,"
              " completed_at, cancel_requested, error, timings) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
              path_);
  s.integer(1, job.seq);
  s.text(2, job.spec.id);
  s.text(3, spec_to_json(job).dump());
  s.text(4, phase_name(p.phase));
  s.integer(5, p.step);
  s.integer(6, p.total_steps);
  s.integer(7, p.dop);
  s.real(8, job.created_at);
  s.real(9, job.completed_at);
  s.integer(10, job.cancel_requested ? 1 : 0);
  s.text(11, p.error);
  s.text(12, timings.dump());
  if (sqlite3_step(s.get()) != SQLITE_DONE)
    throw Error("job store " + path_.string() + ": writing job " + job.spec.id + ": " +
                sqlite3_errmsg(db_));
}

void JobStore::remove(const std::string& id) {
  const std::lock_guard lock(mutex_);
  Statement s(db_, "DELETE FROM jobs WHERE id = ?", path_);
  s.text(1, id);
  if (sqlite3_step(s.get()) != SQLITE_DONE)
    throw Error("job store " + path_.string() + ": removing job " + id + ": " + sqlite3_errmsg(db_));
}

std::optional<Job> JobStore::get(const std::string& id) const {
  const std::lock_guard lock(mutex_);
  Statement s(db_, (std::string("SELECT ") + kColumns + " FROM jobs WHERE id = ?").c_str(), path_);
  s.text(1, id);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  return read_row(s.get());
}

std::vector<Job> JobStore::load_all() const {
  const std::lock_guard lock(mutex_);
  Statement s(db_, (std::string("SELECT ") + kColumns + " FROM jobs ORDER BY seq").c_str(), path_);
  std::vector<Job> jobs;
  int rc = 0;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) jobs.push_back(read_row(s.get()));
  if (rc != SQLITE_DONE) throw Error("job store " + path_.string() + ": " + sqlite3_errmsg(db_));
  return jobs;
}

std::int64_t JobStore::max_seq() const {
  const std::lock_guard lock(mutex_);
  Statement s(db_, "SELECT COALESCE(MAX(seq), 0) FROM jobs", path_);
  sqlite3_step(s.get());
  return sqlite3_column_int64(s.get(), 0);
}

}  // namespace ditserve::server
