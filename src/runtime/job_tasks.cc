// The bodies of the tasks the control loop posts to device workers. Each runs under its
// job's task lock, holds its devices through a Lease, and ends by posting one Completion.
#include <algorithm>
#include <optional>
#include <utility>

#include "pipeline/video_writer.h"
#include "runtime/engine_impl.h"
#include "runtime/group_decode.h"
#include "runtime/group_step.h"
#include "runtime/state_copies.h"

namespace ditserve::runtime {

namespace {

// Thrown when a device fails (fault injection) as a step or a decode starts on it.
struct DeviceLostError {
  int rank = -1;
};

}  // namespace

void EngineImpl::run_encode(const std::shared_ptr<Job>& job, int rank) {
  if (stopping_) return;
  const std::lock_guard task(job->mu);
  Completion done;
  done.kind = Completion::Kind::kEncoded;
  done.job = job;
  done.ranks = {rank};
  try {
    if (!job->cancel) {
      {
        const std::lock_guard lock(mu_);
        job->progress.phase = JobPhase::kEncoding;
        job->progress.queued_s = now() - job->submitted;
        emit(*job);
      }
      Slot& s = slot(rank);
      Pipeline& pipeline = *s.pipelines[static_cast<std::size_t>(job->model)];
      const Lease lease(*this, {rank}, job->spec.id);
      const double t0 = now();
      GenerationState state = pipeline.start(
          job->spec.request, pipeline.encode(job->spec.request.prompt, job->spec.request.negative_prompt));
      if (job->resume) state = resume_state(*job->resume, state, *s.backend);
      job->checkpoint = host_copy(state, *s.backend);
      job->state = std::move(state);
      job->holder = rank;
      done.seconds = now() - t0;
    }
    if (!job->resume && !job->spec.state_file.empty() && job->checkpoint)
      save_state(job->spec.state_file, job->spec.model, job->spec.request, *job->checkpoint);
  } catch (const std::exception& e) {
    done.kind = Completion::Kind::kFailed;
    done.error = e.what();
  }
  post(std::move(done));
}

void EngineImpl::run_steps(const std::shared_ptr<Job>& job, std::vector<int> ranks, int steps) {
  if (stopping_) return;
  const std::lock_guard task(job->mu);
  Completion done;
  done.kind = Completion::Kind::kStepped;
  done.job = job;
  done.dop = static_cast<int>(ranks.size());
  try {
    // The device holding the state leads the group, so the state need not move.
    const auto held = std::find(ranks.begin(), ranks.end(), job->holder);
    if (held != ranks.end()) std::rotate(ranks.begin(), held, held + 1);
    done.ranks = ranks;
    const int leader = ranks.front();
    Backend& be = *slot(leader).backend;
    std::vector<DiffusionTransformer*> members;
    std::vector<std::string> names;
    for (int r : ranks) {
      members.push_back(&slot(r).pipelines[static_cast<std::size_t>(job->model)]->transformer());
      names.push_back(slot(r).name);
    }
    const DeviceGroup group{ranks};
    std::optional<GenerationState> latest;  // host copy after the last step
    for (int i = 0; i < steps; ++i) {
      if (stopping_) return;  // shutdown: the state file stays for a restart
      if (job->cancel || (job->state ? *job->state : *job->checkpoint).done()) break;
      double step_s = 0;
      {
        const Lease lease(*this, ranks, job->spec.id);
        for (int r : ranks)
          if (++slot(r).steps_started == slot(r).fail_at_step) throw DeviceLostError{r};
        double t0 = now();
        if (job->holder != leader) {
          job->state = device_copy(*job->checkpoint, be);
          job->holder = leader;
          be.synchronize();
          const double t1 = now();
          done.move_s = t1 - t0;
          t0 = t1;
        }
        group_step(*fabric_, group, members, *job->state);
        latest = host_copy(*job->state, be);  // waits for the device
        step_s = now() - t0;
      }
      done.step_s.push_back(step_s);
      const int index = static_cast<int>(latest->step_index());
      if (!job->spec.state_file.empty())
        save_state(job->spec.state_file, job->spec.model, job->spec.request, *latest);
      const std::lock_guard lock(mu_);
      job->progress.phase = JobPhase::kDenoising;
      job->progress.step = index;
      job->progress.dop = static_cast<int>(ranks.size());
      job->progress.devices = names;
      job->progress.denoise_s += step_s + (i == 0 && done.move_s > 0 ? done.move_s : 0.0);
      emit(*job);
    }
    if (latest) job->checkpoint = std::move(latest);
  } catch (const DeviceLostError& lost) {
    // What ran on the lost device is gone: the scheduler takes the action's steps back,
    // and the request restarts them from the host copy made before the action.
    job->state.reset();
    job->holder = -1;
    done.kind = Completion::Kind::kDeviceLost;
    done.device = lost.rank;
    done.step_s.clear();
    const std::lock_guard lock(mu_);
    job->progress.step = static_cast<int>(job->checkpoint->step_index());
  } catch (const std::exception& e) {
    done.kind = Completion::Kind::kFailed;
    done.error = e.what();
  }
  post(std::move(done));
}

void EngineImpl::run_decode(const std::shared_ptr<Job>& job, std::vector<int> ranks) {
  if (stopping_) return;
  const std::lock_guard task(job->mu);
  Completion done;
  done.kind = Completion::Kind::kDecoded;
  done.job = job;
  try {
    if (!job->cancel) {
      // The device holding the state leads the group (its VAE drives the decode and the
      // video is gathered there), so the state need not move.
      const auto held = std::find(ranks.begin(), ranks.end(), job->holder);
      if (held != ranks.end()) std::rotate(ranks.begin(), held, held + 1);
      const int leader = ranks.front();
      Pipeline& pipeline = *slot(leader).pipelines[static_cast<std::size_t>(job->model)];
      // A VAE without a patch-parallel decode runs on the leader alone (a given profile
      // may list decode DoPs for it); the other devices stay reserved, as the scheduler
      // holds them until the decode ends.
      const std::vector<int> group = pipeline.vae().decodes_patch_parallel() ? ranks : std::vector<int>{leader};
      std::vector<std::string> names;
      for (int r : group) names.push_back(slot(r).name);
      {
        const std::lock_guard lock(mu_);
        job->progress.phase = JobPhase::kDecoding;
        job->progress.decode_dop = static_cast<int>(group.size());
        job->progress.decode_devices = names;
        emit(*job);
      }
      Tensor video;
      {
        // Every member: the decode drives their backends (halo exchanges, each member's
        // bands through its own VAE's parameters) from this thread.
        const Lease lease(*this, ranks, job->spec.id);
        // Every device the decode holds takes part in it (a VAE without a group decode
        // leaves the others reserved, as the scheduler does).
        for (int r : ranks)
          if (++slot(r).decodes_started == slot(r).fail_at_decode) throw DeviceLostError{r};
        Backend& be = *slot(leader).backend;
        const double t0 = now();
        const GenerationState state = job->holder == leader ? *job->state : device_copy(*job->checkpoint, be);
        std::vector<Pipeline*> members;
        for (int r : group) {
          members.push_back(slot(r).pipelines[static_cast<std::size_t>(job->model)].get());
        }
        video = group_decode(*fabric_, DeviceGroup{group}, members, state);
        done.seconds = now() - t0;
        done.dop = static_cast<int>(group.size());
        done.ranks = group;
        if (job->holder == leader) job->state.reset();  // freed by the thread driving its device
      }
      if (stopping_) return;
      {
        const std::lock_guard lock(mu_);
        job->progress.decode_s = done.seconds;
      }
      if (!job->cancel) {
        // The devices are free now: the scheduler hears so first, then the file is written
        // off their worker (its kWritten completion follows this kDecoded one).
        done.output_pending = true;
        post(std::move(done));
        output_writer_->post([this, job, video] { run_write(job, video); });
        return;
      }
    }
  } catch (const DeviceLostError& lost) {
    // The decode is lost with the device: the scheduler makes the request wait for
    // another decode group, which starts from the host copy (the state cached on the
    // leader is dropped as a step's is, whichever member failed).
    job->state.reset();
    job->holder = -1;
    done.kind = Completion::Kind::kDeviceLost;
    done.device = lost.rank;
    // Said at once: until the scheduler picks another group, none decodes it.
    const std::lock_guard lock(mu_);
    job->progress.decode_dop = 0;
    job->progress.decode_devices.clear();
    emit(*job);
  } catch (const std::exception& e) {
    done.kind = Completion::Kind::kFailed;
    done.error = e.what();
  }
  post(std::move(done));
}

void EngineImpl::run_write(const std::shared_ptr<Job>& job, const Tensor& video) {
  if (stopping_) return;
  Completion done;
  done.kind = Completion::Kind::kWritten;
  done.job = job;
  try {
    if (!job->cancel) {
      if (write_output_) {
        write_output_(job->spec, video);
      } else {
        write_output(*job, video);
      }
    }
  } catch (const std::exception& e) {
    done.error = std::string("writing the output: ") + e.what();
  }
  post(std::move(done));
}

void EngineImpl::write_output(const Job& job, const Tensor& video) const {
  RgbFrames frames = to_rgb8(video);
  if (job.spec.format == OutputFormat::kPng) {
    frames.frames = 1;
    frames.pixels.resize(static_cast<std::size_t>(frames.height * frames.width * 3));
    write_png(job.spec.output, frames);
  } else if (job.spec.format == OutputFormat::kY4m) {
    write_y4m(job.spec.output, frames, job.spec.request.fps);
  } else {
    write_mp4(job.spec.output, frames, job.spec.request.fps);
  }
}

}  // namespace ditserve::runtime
