#include "kernels/captured_work.h"

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "kernels/dispatch.h"
#include "tensor/error.h"

#ifdef DITSERVE_WITH_CUDA
#include "kernels/cuda/cuda_graph.h"
#endif

namespace ditserve {
namespace {

// The capture running in this thread, if any: which backend, and the tensors the captured
// work must hold. Thread-local, as a capture is (cudaStreamCaptureModeThreadLocal) and as
// a backend is driven by one thread at a time.
struct ActiveCapture {
  const Backend* backend = nullptr;
  std::vector<Tensor> retained;
};
thread_local ActiveCapture* active_capture = nullptr;

class CaptureScope {
 public:
  explicit CaptureScope(ActiveCapture& capture) { active_capture = &capture; }
  ~CaptureScope() { active_capture = nullptr; }
  CaptureScope(const CaptureScope&) = delete;
  CaptureScope& operator=(const CaptureScope&) = delete;
};

// CPU: the work itself, run again on each replay.
class RepeatedWork final : public CapturedWork {
 public:
  explicit RepeatedWork(std::function<void()> work) : work_(std::move(work)) {}
  void replay() override { work_(); }

 private:
  std::function<void()> work_;
};

// The backend's captured work plus the tensors it reads that it must keep alive. The
// retained tensors are declared first so they are released after the graph is gone.
class RetainingWork final : public CapturedWork {
 public:
  RetainingWork(std::vector<Tensor> retained, std::unique_ptr<CapturedWork> work)
      : retained_(std::move(retained)), work_(std::move(work)) {}
  void replay() override { work_->replay(); }

 private:
  std::vector<Tensor> retained_;
  std::unique_ptr<CapturedWork> work_;
};

}  // namespace

bool is_capturing(const Backend& be) {
  return active_capture != nullptr && active_capture->backend == &be;
}

void retain_for_capture(const Backend& be, const Tensor& t) {
  if (is_capturing(be) && t.defined()) active_capture->retained.push_back(t);
}

std::unique_ptr<CapturedWork> capture_work(Backend& be, std::function<void()> work) {
  DITSERVE_CHECK(work != nullptr, "capture_work: no work given");
  DITSERVE_CHECK(active_capture == nullptr, "capture_work: this thread is already capturing on ",
                 active_capture->backend->device().str(), "; captures do not nest");
  ActiveCapture capture{&be, {}};
  std::unique_ptr<CapturedWork> captured;
  if (be.device().is_cpu()) {
    {
      const CaptureScope scope(capture);
      try {
        work();
      } catch (const std::exception& e) {
        throw Error("capture of work on " + be.device().str() + " failed: " + e.what());
      }
    }
    captured = std::make_unique<RepeatedWork>(std::move(work));
  } else {
    const CaptureScope scope(capture);
    DITSERVE_ON_CUDA(captured = cuda::capture_graph(cuda::as_cuda(be), work));
  }
  return std::make_unique<RetainingWork>(std::move(capture.retained), std::move(captured));
}

}  // namespace ditserve
