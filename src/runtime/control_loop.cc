// The control thread: the only caller of the scheduler and the profile estimator. It
// turns completions into scheduler events and the scheduler's actions into device tasks.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <utility>

#include "runtime/engine_impl.h"

namespace ditserve::runtime {

void EngineImpl::post(Completion c) {
  {
    const std::lock_guard lock(mu_);
    inbox_.push_back(std::move(c));
  }
  cv_.notify_one();
}

void EngineImpl::control_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    const auto ready = [&] { return stopping_ || !inbox_.empty(); };
    const double wake = scheduler_->wake_at();
    if (std::isfinite(wake)) {
      const auto at = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wake));
      cv_.wait_until(lock, at, ready);
    } else {
      cv_.wait(lock, ready);
    }
    if (stopping_) return;
    std::deque<Completion> batch;
    batch.swap(inbox_);
    const double t = now();
    for (Completion& c : batch) {
      try {
        handle(c, t);
      } catch (const std::exception& e) {
        if (!is_terminal(c.job->progress.phase)) finish(*c.job, JobPhase::kFailed, e.what());
      }
    }
    try {
      if (t >= scheduler_->wake_at()) {
        sched::Event tick;
        tick.kind = sched::EventKind::kTick;
        tick.time = t;
        scheduler_->on_event(tick);
      }
      dispatch(scheduler_->schedule());
    } catch (const std::exception& e) {
      // A broken scheduler contract: fail what is left rather than hang.
      std::fprintf(stderr, "ditserve engine: scheduler error: %s\n", e.what());
      for (auto& [id, job] : std::map(jobs_)) finish(*job, JobPhase::kFailed, e.what());
    }
  }
}

void EngineImpl::update_shapes(const std::vector<int>& changed) {
  for (int i : changed) scheduler_->update_shape(i, estimator_->profile().shapes[static_cast<std::size_t>(i)]);
}

void EngineImpl::learn(const Completion& c, int shape) {
  if (!refine_profile_) return;
  using Kind = Completion::Kind;
  using Phase = FirstUseFilter::Phase;
  // A device's first run of some work (an encode of the shape; a step or decode of the
  // shape at this DoP in this member position) includes its backend's lazy setup: that
  // duration is left out, or the inflated figure would stay (first_use.h says why). Of a
  // kStep action's steps only the first (the first two with CUDA graphs: the second
  // captures) can be one; the others run on set-up devices.
  if (c.kind == Kind::kEncoded && c.seconds > 0 && !first_uses_.first_use(Phase::kEncode, shape, c.ranks))
    update_shapes(estimator_->observe_encode(shape, c.seconds));
  if (c.kind == Kind::kStepped) {
    const auto setup = static_cast<std::size_t>(
        c.step_s.empty() ? 0
                         : first_uses_.setup_runs(Phase::kStep, shape, c.ranks,
                                                  static_cast<int>(c.step_s.size())));
    for (std::size_t i = setup; i < c.step_s.size(); ++i)
      update_shapes(estimator_->observe_step(shape, c.dop, c.step_s[i]));
    if (c.move_s >= 0) update_shapes(estimator_->observe_move(shape, c.move_s));
  }
  if (c.kind == Kind::kDecoded && c.seconds > 0 && !first_uses_.first_use(Phase::kDecode, shape, c.ranks))
    update_shapes(estimator_->observe_decode(shape, c.dop, c.seconds));
}

void EngineImpl::pick_encoder() {
  for (int r = static_cast<int>(alive_.size()) - 1; r >= 0; --r)
    if (alive_[static_cast<std::size_t>(r)]) {
      encoder_ = r;
      return;
    }
}

void EngineImpl::handle(Completion& c, double t) {
  Job& job = *c.job;
  if (is_terminal(job.progress.phase)) return;
  using Kind = Completion::Kind;
  sched::Event e;
  e.time = t;
  e.request = job.request;
  // Ends a request that sits at a boundary (it holds no device) as cancelled.
  const auto cancel_now = [&] {
    scheduler_->cancel(job.request, "cancelled");
    finish(job, JobPhase::kCancelled, "");
  };
  const int shape = job.request >= 0 ? scheduler_->state().requests[static_cast<std::size_t>(job.request)].spec.shape : -1;
  switch (c.kind) {
    case Kind::kArrival: {
      int index = estimator_->find(job.key);
      if (index < 0) {
        index = scheduler_->add_shape(figures(job.model, job.key));
        estimator_->add(job.key, max_dop(job.model), max_decode_dop(job.model, job.key));
      }
      e.kind = sched::EventKind::kArrival;
      e.spec.id = static_cast<sched::RequestId>(by_request_.size());
      e.spec.shape = index;
      const int done = job.resume ? job.resume->step : 0;
      e.spec.steps = std::max(1, job.spec.request.steps - done);  // a finished state still decodes
      e.spec.deadline = job.submitted + job.spec.deadline_s;
      e.spec.priority = job.spec.priority;
      job.request = scheduler_->on_event(e);
      by_request_.push_back(c.job);
      return;
    }
    case Kind::kCancel: {
      const sched::Phase p = scheduler_->state().requests[static_cast<std::size_t>(job.request)].phase;
      // A request running an action is ended when the action returns.
      if (p == sched::Phase::kQueued || p == sched::Phase::kReady || p == sched::Phase::kAwaitDecode)
        cancel_now();
      return;
    }
    case Kind::kEncoded:
      learn(c, shape);
      e.kind = sched::EventKind::kEncodeDone;
      scheduler_->on_event(e);
      if (job.cancel) return cancel_now();
      job.progress.phase = JobPhase::kDenoising;
      job.progress.encode_s = c.seconds;
      emit(job);
      return;
    case Kind::kStepped:
      learn(c, shape);
      e.kind = sched::EventKind::kStepsDone;
      scheduler_->on_event(e);
      if (job.cancel) cancel_now();
      return;
    case Kind::kDecoded:
      learn(c, shape);
      e.kind = sched::EventKind::kDecodeDone;
      scheduler_->on_event(e);
      if (!c.output_pending) finish(job, job.cancel ? JobPhase::kCancelled : JobPhase::kCompleted, "");
      return;
    case Kind::kWritten:  // the scheduler is done with it since kDecoded
      if (!c.error.empty()) return finish(job, JobPhase::kFailed, c.error);
      finish(job, job.cancel ? JobPhase::kCancelled : JobPhase::kCompleted, "");
      return;
    case Kind::kDeviceLost:
      e.kind = sched::EventKind::kDeviceLost;
      e.device = c.device;
      e.for_good = true;  // nothing brings a device back: waiting for it would hang its jobs
      scheduler_->on_event(e);
      alive_[static_cast<std::size_t>(c.device)] = false;
      if (encoder_ == c.device) pick_encoder();
      if (std::find(alive_.begin(), alive_.end(), true) == alive_.end()) {
        for (const sched::Action& a : scheduler_->reject_all("every device is lost"))
          if (const std::shared_ptr<Job> other = by_request_[static_cast<std::size_t>(a.request)])
            finish(*other, JobPhase::kFailed, a.reason);
        return;
      }
      if (job.cancel) cancel_now();
      return;
    case Kind::kFailed: {
      const sched::Phase p = scheduler_->state().requests[static_cast<std::size_t>(job.request)].phase;
      e.kind = p == sched::Phase::kEncoding   ? sched::EventKind::kEncodeDone
               : p == sched::Phase::kStepping ? sched::EventKind::kStepsDone
                                              : sched::EventKind::kDecodeDone;
      scheduler_->on_event(e);
      if (p != sched::Phase::kDecoding) scheduler_->cancel(job.request, "failed: " + c.error);
      finish(job, JobPhase::kFailed, c.error);
      return;
    }
  }
}

void EngineImpl::dispatch(const std::vector<sched::Action>& actions) {
  for (const sched::Action& a : actions) {
    const std::shared_ptr<Job> job = by_request_[static_cast<std::size_t>(a.request)];
    if (!job) continue;  // the engine ended it already
    switch (a.kind) {
      case sched::ActionKind::kEncode: {
        const int rank = encoder_;
        slot(rank).worker->post([this, job, rank] { run_encode(job, rank); });
        break;
      }
      case sched::ActionKind::kStep:
        slot(a.devices.front()).worker->post(
            [this, job, ranks = a.devices, steps = a.steps] { run_steps(job, ranks, steps); });
        break;
      case sched::ActionKind::kDecode:
        slot(a.devices.front()).worker->post([this, job, ranks = a.devices] { run_decode(job, ranks); });
        break;
      case sched::ActionKind::kPreempt:
        break;  // its state stays cached on its device; the host copy is current
      case sched::ActionKind::kReject:
        if (!is_terminal(job->progress.phase))
          finish(*job, job->cancel ? JobPhase::kCancelled : JobPhase::kFailed, a.reason);
        break;
    }
  }
}

void EngineImpl::finish(Job& job, JobPhase phase, const std::string& error) {
  job.progress.phase = phase;
  job.progress.error = error;
  if (!job.spec.state_file.empty()) {
    std::error_code ignored;
    std::filesystem::remove(job.spec.state_file, ignored);
  }
  emit(job);
  const auto it = jobs_.find(job.spec.id);
  if (it != jobs_.end() && it->second.get() == &job) jobs_.erase(it);
  // Its tensors go with the last task that still holds it.
  if (job.request >= 0) by_request_[static_cast<std::size_t>(job.request)].reset();
}

}  // namespace ditserve::runtime
