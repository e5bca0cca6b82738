#pragma once
// Work captured once and re-issued: on CUDA the ops a function queues on a backend's stream
// become one CUDA graph, replayed with a single launch instead of one host launch per
// kernel; on the CPU backend the "capture" runs the function and a replay runs it again
// (same semantics, so the logic built on top is testable without a GPU).
//
// A graph bakes in everything the host decided while it was captured: kernel arguments
// (shapes, host scalars), which kernels and library plans ran, and every device pointer.
// REQUIRES of the captured work, so that a replay does what a fresh call would:
//  - it reads its inputs from and writes its results to tensors made before the capture
//    that stay alive and in place until the last replay (callers copy new values into
//    them between replays);
//  - it does nothing lazily that waits for the device or allocates outside the stream
//    order: no host synchronisation, no transfer to or from the host, no plan building or
//    autotuning (run the same work once eagerly first: that builds every plan, table and
//    the workspace it needs);
//  - a tensor made before the capture that its owner may later replace (a model's cached
//    table, the CUDA backend's workspace) is handed to retain_for_capture(), so the
//    captured work keeps it alive for as long as it may be replayed.
// Tensors the work allocates and frees inside the capture become the graph's own memory
// (graph memory nodes): a replay allocates and frees them again. A tensor allocated
// inside and kept past the capture is a bug; its replay fails (no auto-free on launch).

#include <functional>
#include <memory>

#include "kernels/backend.h"

namespace ditserve {

class CapturedWork {
 public:
  virtual ~CapturedWork() = default;
  // Re-issues the captured work on the backend it was captured on (CUDA: one graph launch
  // on its stream, asynchronous as any op; CPU: the work runs again). REQUIRES: the thread
  // driving that backend calls it, and the backend outlives this object.
  virtual void replay() = 0;
};

// Captures what `work` queues on `be`. CUDA: begins a capture of be's stream in the
// thread-local mode (other threads, driving other GPUs, are not disturbed), runs `work`,
// ends the capture and instantiates the graph; the work's effects do NOT happen (call
// replay() for them). CPU: runs `work` once (its effects happen) and keeps it to replay.
// Throws Error naming the device and the cause when the work throws or does something a
// capture cannot hold (a host synchronisation, say); the stream is then out of capture
// mode and the backend usable as before. Throws InvalidArgument when `be` is already
// capturing.
std::unique_ptr<CapturedWork> capture_work(Backend& be, std::function<void()> work);

// Whether capture_work() is running on `be` in this thread.
bool is_capturing(const Backend& be);

// During a capture on `be` in this thread: the captured work holds `t` (a tensor made
// before the capture that it reads) until it is destroyed. Outside a capture: nothing.
void retain_for_capture(const Backend& be, const Tensor& t);

}  // namespace ditserve
