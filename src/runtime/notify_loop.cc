// The notifier thread: calls the listener outside every engine lock, so a slow listener
// delays only other notices, never the scheduler or the devices.
#include <utility>

#include "runtime/engine_impl.h"

namespace ditserve::runtime {

void EngineImpl::emit(const Job& job) {
  {
    const std::lock_guard lock(notify_mu_);
    notices_.push_back(job.progress);
  }
  notify_cv_.notify_one();
}

void EngineImpl::notify_loop() {
  std::unique_lock lock(notify_mu_);
  for (;;) {
    notify_cv_.wait(lock, [&] { return notify_stop_ || !notices_.empty(); });
    if (notices_.empty()) return;
    const JobProgress p = std::move(notices_.front());
    notices_.pop_front();
    const auto listener = listener_;
    lock.unlock();
    if (listener) listener(p);
    lock.lock();
  }
}

}  // namespace ditserve::runtime
