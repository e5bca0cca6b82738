#pragma once
// Timing of queued device work, for benchmarks: CUDA events on a CUDA backend (no host
// synchronisation between marks), a host clock on the CPU backend (which runs
// synchronously). A Timeline attributes the work queued between consecutive marks to
// the label of the later mark; models call timeline_mark() at their stage boundaries,
// which costs one pointer test when no Timeline is active.

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/backend.h"

namespace ditserve {

// One timestamp in `be`'s queue.
class DeviceStamp {
 public:
  virtual ~DeviceStamp() = default;
  // Milliseconds from `start` to this stamp (waits until this stamp has happened).
  virtual double elapsed_ms_since(const DeviceStamp& start) = 0;
};
// Queues a timestamp on be's stream (CUDA) or reads the host clock (CPU).
std::unique_ptr<DeviceStamp> record_stamp(Backend& be);

// Labelled intervals of one backend's queue. Not thread-safe; one per thread.
class Timeline {
 public:
  explicit Timeline(Backend& be);
  ~Timeline();
  Timeline(const Timeline&) = delete;
  Timeline& operator=(const Timeline&) = delete;

  Backend& backend() const { return be_; }
  // Starts the first interval (drops earlier marks).
  void start();
  // Closes the current interval and attributes it to `label`.
  void mark(std::string_view label);
  // Milliseconds per label summed over the intervals so far (waits for the last mark).
  std::map<std::string, double> totals_ms();

 private:
  Backend& be_;
  std::unique_ptr<DeviceStamp> origin_;
  std::vector<std::pair<std::string, std::unique_ptr<DeviceStamp>>> marks_;
};

// Makes `timeline` the active one of this thread for the guard's lifetime.
class ScopedTimeline {
 public:
  explicit ScopedTimeline(Timeline& timeline);
  ~ScopedTimeline();
  ScopedTimeline(const ScopedTimeline&) = delete;
  ScopedTimeline& operator=(const ScopedTimeline&) = delete;

 private:
  Timeline* previous_;
};

// Marks the active timeline of this thread, if any and if it times `be`.
void timeline_mark(const Backend& be, std::string_view label);

// Device memory of the backend's pool: the high-water mark and what is held now
// (bytes; 0 on the CPU backend, which has no pool).
struct DeviceMemory {
  std::size_t reserved_high_bytes = 0;
  std::size_t reserved_bytes = 0;
};
DeviceMemory device_memory(Backend& be);

}  // namespace ditserve
