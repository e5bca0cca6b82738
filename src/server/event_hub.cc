#include "server/event_hub.h"

namespace ditserve::server {

void EventHub::publish(const runtime::JobProgress& progress) {
  {
    const std::lock_guard lock(mutex_);
    std::vector<JobEvent>& log = logs_[progress.id];
    JobEvent e;
    e.index = log.empty() ? 0 : log.back().index + 1;
    // Only denoising repeats its phase per step; a repeated decoding event is a new group.
    const bool stepped = !log.empty() && log.back().progress.phase == runtime::JobPhase::kDenoising &&
                         progress.phase == runtime::JobPhase::kDenoising;
    e.type = stepped ? "step" : "phase";
    e.progress = progress;
    log.push_back(std::move(e));
    if (log.size() > max_per_job_) log.erase(log.begin());
    if (runtime::is_terminal(progress.phase)) {
      finished_.push_back(progress.id);
      if (finished_.size() > max_finished_) {
        logs_.erase(finished_.front());
        finished_.pop_front();
      }
    }
  }
  changed_.notify_all();
}

std::vector<JobEvent> EventHub::wait(const std::string& id, std::size_t from,
                                     std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  std::vector<JobEvent> out;
  const auto collect = [&] {
    if (closed_) return true;
    const auto it = logs_.find(id);
    if (it == logs_.end() || it->second.empty() || it->second.back().index < from) return false;
    for (const JobEvent& e : it->second)
      if (e.index >= from) out.push_back(e);
    return true;
  };
  changed_.wait_for(lock, timeout, collect);
  if (closed_) out.clear();
  return out;
}

void EventHub::forget(const std::string& id) {
  const std::lock_guard lock(mutex_);
  logs_.erase(id);
  std::erase(finished_, id);
}

void EventHub::close() {
  {
    const std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

bool EventHub::closed() const {
  const std::lock_guard lock(mutex_);
  return closed_;
}

std::string sse_frame(std::size_t id, const std::string& event, const std::string& data) {
  return "id: " + std::to_string(id) + "\nevent: " + event + "\ndata: " + data + "\n\n";
}

}  // namespace ditserve::server
