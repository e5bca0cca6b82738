#pragma once
// Every job's progress events, kept in order so a server-sent-events stream can replay
// what it missed (a client connecting late, or reconnecting with Last-Event-ID) and then
// wait for more. Fed by the engine's listener; read by HTTP threads. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace ditserve::server {

struct JobEvent {
  std::size_t index = 0;  // 0, 1, ... per job: the SSE id
  // "step": a denoising step finished (the job was denoising before it); "phase": anything
  // else: the phase changed, or the decode group did (a decode lost a device, or started
  // again on another group).
  std::string type;
  runtime::JobProgress progress;
};

class EventHub {
 public:
  // A job keeps its last `max_per_job` events; the logs of the oldest finished jobs beyond
  // `max_finished` are dropped (a stream for such a job shows its final state instead).
  explicit EventHub(std::size_t max_per_job = 4096, std::size_t max_finished = 4096)
      : max_per_job_(max_per_job), max_finished_(max_finished) {}
  // Appends the event to its job's log (the type is inferred from the previous event) and
  // wakes the waiters.
  void publish(const runtime::JobProgress& progress);

  // The job's events with index >= from, waiting up to `timeout` for the first when there
  // are none yet; empty on timeout or once the hub is closed.
  std::vector<JobEvent> wait(const std::string& id, std::size_t from,
                             std::chrono::milliseconds timeout) const;
  // Drops the job's events (a deleted job): later waits for it find none.
  void forget(const std::string& id);
  // Wakes every waiter for good (server shutdown).
  void close();
  bool closed() const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::map<std::string, std::vector<JobEvent>> logs_;
  std::deque<std::string> finished_;  // jobs whose log ends with a terminal event, oldest first
  std::size_t max_per_job_;
  std::size_t max_finished_;
  bool closed_ = false;
};

// One SSE message: "id: N\nevent: TYPE\ndata: JSON\n\n" (data on one line: JSON has no
// raw newlines).
std::string sse_frame(std::size_t id, const std::string& event, const std::string& data);
// A comment line that keeps idle connections (and proxies) alive.
inline constexpr const char* kSseKeepAlive = ": keep-alive\n\n";

}  // namespace ditserve::server
