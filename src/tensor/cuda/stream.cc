#include "tensor/cuda/stream.h"

#include "tensor/cuda/cuda_check.h"

namespace ditserve::cuda {

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  throw Error(std::string("CUDA error ") + cudaGetErrorName(status) + " (" +
              cudaGetErrorString(status) + ") in " + call + " at " + file + ":" +
              std::to_string(line));
}

DeviceGuard::DeviceGuard(int device) {
  DITSERVE_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) DITSERVE_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() { cudaSetDevice(previous_); }

namespace {

// Destructors must not throw: at process exit the CUDA runtime may already be unloading,
// and then there is nothing left to release. Returns false when the device cannot be set.
bool set_device_quietly(int device) {
  if (cudaSetDevice(device) == cudaSuccess) return true;
  cudaGetLastError();
  return false;
}

}  // namespace

Stream::Stream(int device) : device_(device) {
  DeviceGuard guard(device);
  DITSERVE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

Stream::~Stream() {
  if (stream_ != nullptr && set_device_quietly(device_)) cudaStreamDestroy(stream_);
}

void Stream::synchronize() const { DITSERVE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

Event::Event(int device, bool timing) : device_(device) {
  DeviceGuard guard(device);
  DITSERVE_CUDA_CHECK(
      cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

Event::~Event() {
  if (event_ != nullptr && set_device_quietly(device_)) cudaEventDestroy(event_);
}

void Event::record(const Stream& stream) { record(stream.get()); }

void Event::record(cudaStream_t stream) {
  DeviceGuard guard(device_);
  DITSERVE_CUDA_CHECK(cudaEventRecord(event_, stream));
}

void Event::block(cudaStream_t stream) const {
  DITSERVE_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0));
}

void Event::synchronize() const { DITSERVE_CUDA_CHECK(cudaEventSynchronize(event_)); }

float Event::elapsed_ms_since(const Event& start) const {
  float ms = 0;
  DITSERVE_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
  return ms;
}

void wait_for(cudaStream_t waiter, int signaller_device, cudaStream_t signaller) {
  Event done(signaller_device);
  done.record(signaller);
  done.block(waiter);
}

}  // namespace ditserve::cuda
