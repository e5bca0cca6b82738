#pragma once
// The CUDA side of capture_work (kernels/captured_work.h): one stream capture into a CUDA
// graph, instantiated and replayed by cudaGraphLaunch on the backend's stream.

#include <functional>
#include <memory>

#include "kernels/captured_work.h"
#include "kernels/cuda/cuda_backend.h"

namespace ditserve::cuda {

// Captures what `work` queues on be's stream (thread-local capture mode). Throws Error
// naming the device and the cause when the work throws, the capture was invalidated or the
// graph cannot be instantiated; the stream is out of capture mode whenever this returns
// or throws.
std::unique_ptr<CapturedWork> capture_graph(CudaBackend& be, const std::function<void()>& work);

}  // namespace ditserve::cuda
