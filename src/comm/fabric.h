#pragma once
// The devices one process drives and the paths between them. A Fabric is made once over
// every device; any ordered subset of its ranks is a DeviceGroup, formed and dropped at
// no cost: there is no per-group set-up (unlike creating an NCCL communicator), so a
// request's next step may run on any group the scheduler picks.
//
// One controller thread issues all work. Collectives take one tensor per member, each on
// that member's device, and return one per member. On CUDA everything is stream-ordered:
// a collective's copies run after the work already queued on the source and destination
// devices and before work queued on them afterwards (events order the streams), so the
// caller never synchronises. CPU devices execute synchronously.

#include <cstdint>
#include <vector>

#include "kernels/backend.h"

namespace ditserve {

class Fabric {
 public:
  // Rank i is devices[i]. The backends must outlive the Fabric. On CUDA, peer access is
  // enabled between every pair of GPUs that supports it.
  explicit Fabric(std::vector<Backend*> devices);

  int size() const { return static_cast<int>(devices_.size()); }
  Backend& device(int rank) const;

  // dst (on rank `to`, any strides) = src (on rank `from`); same shape and dtype.
  void copy(int from, const Tensor& src, int to, const Tensor& dst);

 private:
  std::vector<Backend*> devices_;
};

// An ordered list of distinct ranks. The same ranks in another order are another group.
struct DeviceGroup {
  std::vector<int> ranks;

  int size() const { return static_cast<int>(ranks.size()); }
  // Throws InvalidArgument when empty, a rank repeats, or a rank is not in the fabric.
  void validate(const Fabric& fabric) const;
};

// Splits `total` into `parts` near-equal sizes, the first `total % parts` one larger.
std::vector<std::int64_t> even_split(std::int64_t total, int parts);

}  // namespace ditserve
