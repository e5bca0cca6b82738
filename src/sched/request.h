#pragma once
// One request's state as the scheduler sees it. Every transition happens in Scheduler
// (scheduler.cc); policies read this and never write it.

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace ditserve::sched {

using RequestId = std::int64_t;
inline constexpr double kNoDeadline = std::numeric_limits<double>::infinity();

// What a client asked for. Times are absolute seconds on the scheduler's clock.
struct RequestSpec {
  RequestId id = 0;
  int shape = -1;  // index into Profile::shapes
  int steps = 0;   // denoising steps
  double arrival = 0;
  double deadline = kNoDeadline;
  // Higher is served first among requests waiting for devices (docs/SCHEDULING.md,
  // "Priority"); equal priorities leave each policy's own order as it is.
  int priority = 0;
};

enum class Phase {
  kQueued,       // waiting for a text encoder
  kEncoding,
  kReady,        // at a step boundary: between encode and the first step, or between steps
  kStepping,     // running steps on `group`
  kAwaitDecode,  // all steps done, waiting for a VAE group
  kDecoding,
  kDone,
  kRejected,
};
const char* phase_name(Phase p);

struct RequestState {
  RequestSpec spec;
  Phase phase = Phase::kQueued;
  int steps_done = 0;     // steps dispatched, the in-flight ones included
  int pending_steps = 0;  // in-flight steps, taken back if their action is aborted
  std::vector<int> group;       // devices held now (kStepping, kDecoding), sorted
  std::vector<int> last_group;  // where the latents are (the last step's group), sorted
  bool held = false;            // ran a step in the previous decision (for Preempt actions)
  int epoch = 0;                // bumped when an action is aborted (device lost)
  // Starvation bookkeeping (DDiT): the step count and DoP at the last (re)allocation.
  int alloc_steps_done = 0;
  int dop = 0;  // DoP of the current or last step; 0 before the first
  // Timeline, for reports.
  double encode_done = -1;
  double first_step = -1;
  double finish = -1;
  double service_s = 0;  // time spent in actions (encode, steps, moves, decode)
  // When the action in flight (kEncoding, kStepping, kDecoding) should end by the profile:
  // its start + Action::expected_s. What a policy that looks ahead reads (sched/lookahead.h).
  double expected_end = -1;
  std::string reject_reason;

  int steps_left() const { return spec.steps - steps_done; }
  bool terminal() const { return phase == Phase::kDone || phase == Phase::kRejected; }
};

}  // namespace ditserve::sched
