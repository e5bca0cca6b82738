#include "kernels/timing.h"

#include <chrono>

#include "kernels/dispatch.h"

#ifdef DITSERVE_WITH_CUDA
#include "tensor/cuda/stream.h"
#endif

namespace ditserve {
namespace {

thread_local Timeline* active_timeline = nullptr;

class HostStamp final : public DeviceStamp {
 public:
  HostStamp() : at_(std::chrono::steady_clock::now()) {}
  double elapsed_ms_since(const DeviceStamp& start) override {
    const auto& s = dynamic_cast<const HostStamp&>(start);
    return std::chrono::duration<double, std::milli>(at_ - s.at_).count();
  }

 private:
  std::chrono::steady_clock::time_point at_;
};

#ifdef DITSERVE_WITH_CUDA
class CudaStamp final : public DeviceStamp {
 public:
  explicit CudaStamp(cuda::CudaBackend& be) : event_(be.device_index(), /*timing=*/true) {
    event_.record(be.stream());
  }
  double elapsed_ms_since(const DeviceStamp& start) override {
    event_.synchronize();
    return event_.elapsed_ms_since(dynamic_cast<const CudaStamp&>(start).event_);
  }

 private:
  cuda::Event event_;
};
#endif

}  // namespace

std::unique_ptr<DeviceStamp> record_stamp(Backend& be) {
  if (be.device().is_cpu()) return std::make_unique<HostStamp>();
  DITSERVE_ON_CUDA(return std::make_unique<CudaStamp>(cuda::as_cuda(be)));
}

Timeline::Timeline(Backend& be) : be_(be) {}
Timeline::~Timeline() = default;

void Timeline::start() {
  marks_.clear();
  origin_ = record_stamp(be_);
}

void Timeline::mark(std::string_view label) {
  DITSERVE_CHECK(origin_ != nullptr, "Timeline::mark(", label, "): start() was not called");
  marks_.emplace_back(std::string(label), record_stamp(be_));
}

std::map<std::string, double> Timeline::totals_ms() {
  std::map<std::string, double> totals;
  DeviceStamp* previous = origin_.get();
  for (auto& [label, stamp] : marks_) {
    totals[label] += stamp->elapsed_ms_since(*previous);
    previous = stamp.get();
  }
  return totals;
}

ScopedTimeline::ScopedTimeline(Timeline& timeline) : previous_(active_timeline) {
  active_timeline = &timeline;
}
ScopedTimeline::~ScopedTimeline() { active_timeline = previous_; }

void timeline_mark(const Backend& be, std::string_view label) {
  Timeline* t = active_timeline;
  if (t != nullptr && &t->backend() == &be) t->mark(label);
}

DeviceMemory device_memory(Backend& be) {
  DeviceMemory m;
  if (be.device().is_cpu()) return m;
  DITSERVE_ON_CUDA({
    const cuda::PoolStats s = cuda::as_cuda(be).pool_stats();
    m.reserved_high_bytes = s.reserved_high_bytes;
    m.reserved_bytes = s.reserved_bytes;
  });
  return m;
}

}  // namespace ditserve
