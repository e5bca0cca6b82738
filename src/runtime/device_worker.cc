#include "runtime/device_worker.h"

#include <algorithm>

namespace ditserve::runtime {

DeviceWorker::DeviceWorker(int threads) {
  for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { run(); });
}

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
  cv_.notify_all();
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
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
