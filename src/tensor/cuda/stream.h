#pragma once
// RAII owners of CUDA streams and events, and a guard that sets the current device.

#include <cuda_runtime_api.h>

namespace ditserve::cuda {

// Sets the calling thread's current CUDA device for the guard's lifetime.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

class Stream {
 public:
  explicit Stream(int device);  // non-blocking stream on `device`
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return stream_; }
  int device() const { return device_; }
  void synchronize() const;

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
};

class Event {
 public:
  // Timing events record timestamps; others are lighter and only order work.
  explicit Event(int device, bool timing = false);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  cudaEvent_t get() const { return event_; }
  void record(const Stream& stream);
  void record(cudaStream_t stream);
  // Makes `stream` wait (on the device, not the host) until this event has happened.
  void block(cudaStream_t stream) const;
  void synchronize() const;
  // Milliseconds from `start` to this event; both must be timing events that happened.
  float elapsed_ms_since(const Event& start) const;

 private:
  int device_;
  cudaEvent_t event_ = nullptr;
};

// Makes `waiter` wait (on the device, not the host) for all work queued on `signaller`
// (a stream of device `signaller_device`) so far: how work on two streams, or two GPUs,
// is ordered without synchronising the host.
void wait_for(cudaStream_t waiter, int signaller_device, cudaStream_t signaller);

}  // namespace ditserve::cuda
