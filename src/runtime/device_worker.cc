#include "runtime/device_worker.h"

namespace ditserve::runtime {

DeviceWorker::DeviceWorker() : thread_([this] { run(); }) {}

DeviceWorker::~DeviceWorker() { join(); }

void DeviceWorker::post(std::function<void()> task) {
  {
    const std::lock_guard lock(mu_);
    if (closing_) return;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void DeviceWorker::join() {
  {
    const std::lock_guard lock(mu_);
    closing_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void DeviceWorker::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return closing_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace ditserve::runtime
