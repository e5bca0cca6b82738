#pragma once
// One thread that runs a device's tasks in order: a CPU device's compute thread, or the
// host thread that drives a GPU's stream. A task that needs several devices (a step or a
// decode on a group) runs on its first device's worker and locks the others
// (runtime/device_lease.cc).

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ditserve::runtime {

class DeviceWorker {
 public:
  // `threads` > 1 serves work that needs no device (the engine's output writers): tasks
  // start in the order posted, up to `threads` at once.
  explicit DeviceWorker(int threads = 1);
  ~DeviceWorker();  // join()
  DeviceWorker(const DeviceWorker&) = delete;
  DeviceWorker& operator=(const DeviceWorker&) = delete;

  // Queues `task`; with one thread, tasks run one at a time, in the order posted. A task
  // must not throw.
  void post(std::function<void()> task);
  // Runs what is queued, then ends the threads. Idempotent; later posts are dropped.
  void join();

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool closing_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ditserve::runtime
