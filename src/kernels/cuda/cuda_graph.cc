#include "kernels/cuda/cuda_graph.h"

#include <exception>
#include <string>

#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {
namespace {

// Owns a captured graph (the template; only needed until instantiated).
struct GraphOwner {
  cudaGraph_t graph = nullptr;
  ~GraphOwner() {
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
};

class GraphWork final : public CapturedWork {
 public:
  GraphWork(int device, cudaStream_t stream, cudaGraphExec_t exec)
      : device_(device), stream_(stream), exec_(exec) {}
  GraphWork(const GraphWork&) = delete;
  GraphWork& operator=(const GraphWork&) = delete;

  ~GraphWork() override {
    // Never throws (may run at exit). A replay may still be in flight: wait for it before
    // the executable graph goes, then give the graph's memory back to the device (graph
    // memory is kept by the driver for reuse otherwise, and an evicted 720p step holds GBs).
    if (cudaSetDevice(device_) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    cudaStreamSynchronize(stream_);
    cudaGraphExecDestroy(exec_);
    cudaDeviceGraphMemTrim(device_);
    cudaGetLastError();
  }

  void replay() override {
    DeviceGuard guard(device_);
    DITSERVE_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
  }

 private:
  int device_;
  cudaStream_t stream_;
  cudaGraphExec_t exec_;
};

std::string where(const CudaBackend& be) {
  return "CUDA graph capture on cuda:" + std::to_string(be.device_index());
}

}  // namespace

std::unique_ptr<CapturedWork> capture_graph(CudaBackend& be, const std::function<void()>& work) {
  DeviceGuard guard(be.device_index());
  const cudaStream_t stream = be.stream();
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  DITSERVE_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  DITSERVE_CHECK(status == cudaStreamCaptureStatusNone, where(be),
                 ": the backend's stream is already capturing");
  // Thread-local mode: only this thread's unsafe calls (a synchronisation, cudaMalloc)
  // invalidate the capture; threads driving other GPUs go on undisturbed.
  DITSERVE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  std::string failure;
  try {
    work();
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "a non-standard exception";
  }
  // Always end the capture, whatever happened inside: the stream must leave capture mode.
  GraphOwner captured;
  const cudaError_t ended = cudaStreamEndCapture(stream, &captured.graph);
  cudaGetLastError();  // a failed capture's error is reported below, not left pending
  if (!failure.empty()) throw Error(where(be) + " failed: the work threw: " + failure);
  if (ended != cudaSuccess || captured.graph == nullptr) {
    throw Error(where(be) + " failed: " + cudaGetErrorName(ended) + " (" +
                cudaGetErrorString(ended) +
                "): the work did something a graph cannot hold (a host synchronisation, a "
                "transfer to or from pageable host memory, a cudaMalloc); run it once eagerly "
                "first so plans, tables and the workspace exist before the capture");
  }
  // No cudaGraphInstantiateFlagAutoFreeOnLaunch: every allocation the work makes is freed
  // inside it, and one that is not (a tensor made in the capture and kept past it) must
  // fail the next launch loudly rather than be freed under its holder.
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiateWithFlags(&exec, captured.graph, 0);
  if (made != cudaSuccess) {
    cudaGetLastError();
    throw Error(where(be) + ": instantiating the graph failed: " + cudaGetErrorName(made) + " (" +
                cudaGetErrorString(made) + ")");
  }
  auto result = std::make_unique<GraphWork>(be.device_index(), stream, exec);
  // Moves the graph to the device now, so the first replay is not slower than the rest.
  DITSERVE_CUDA_CHECK(cudaGraphUpload(exec, stream));
  return result;
}

}  // namespace ditserve::cuda
