#include "comm/fabric.h"

#include <algorithm>
#include <string>
#include <utility>

#include "kernels/copy.h"
#include "kernels/cpu/copy.h"
#include "tensor/error.h"

#ifdef DITSERVE_WITH_CUDA
#include "comm/cuda/peer_copy.h"
#endif

namespace ditserve {

Fabric::Fabric(std::vector<Backend*> devices) : devices_(std::move(devices)) {
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    DITSERVE_CHECK(devices_[i] != nullptr, "Fabric: device ", i, " is null");
    for (std::size_t j = 0; j < i; ++j) {
      DITSERVE_CHECK(devices_[j]->device() != devices_[i]->device(), "Fabric: ",
                     devices_[i]->device().str(), " is given twice (ranks ", j, " and ", i, ")");
    }
  }
#ifdef DITSERVE_WITH_CUDA
  cuda::enable_peer_access(devices_);
#endif
}

Backend& Fabric::device(int rank) const {
  DITSERVE_CHECK(rank >= 0 && rank < size(), "Fabric: rank ", rank, " out of range for ",
                 size(), " devices");
  return *devices_[static_cast<std::size_t>(rank)];
}

void Fabric::copy(int from, const Tensor& src, int to, const Tensor& dst) {
  Backend& source = device(from);
  Backend& target = device(to);
  DITSERVE_CHECK(src.defined() && src.device() == source.device(), "Fabric::copy: src ",
                 src.defined() ? src.describe() : std::string("(undefined)"),
                 " is not on rank ", from, " (", source.device().str(), ")");
  DITSERVE_CHECK(dst.defined() && dst.device() == target.device(), "Fabric::copy: dst ",
                 dst.defined() ? dst.describe() : std::string("(undefined)"),
                 " is not on rank ", to, " (", target.device().str(), ")");
  DITSERVE_CHECK(src.dtype() == dst.dtype() && src.shape() == dst.shape(), "Fabric::copy: src ",
                 src.describe(), " and dst ", dst.describe(), " differ in shape or dtype");
  if (source.device().is_cpu() && target.device().is_cpu()) {
    // CPU devices share host memory and run synchronously.
    if (from == to) {
      copy_into(target, dst, src);
    } else {
      cpu::copy_strided(dst, src);
    }
    return;
  }
#ifdef DITSERVE_WITH_CUDA
  cuda::fabric_copy(source, src, target, dst);
#else
  throw Error("Fabric::copy between " + source.device().str() + " and " +
              target.device().str() + ": this build of ditserve has no CUDA backend");
#endif
}

void DeviceGroup::validate(const Fabric& fabric) const {
  DITSERVE_CHECK(!ranks.empty(), "DeviceGroup: no ranks");
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    DITSERVE_CHECK(ranks[i] >= 0 && ranks[i] < fabric.size(), "DeviceGroup: rank ", ranks[i],
                   " (member ", i, ") is not in the fabric of ", fabric.size(), " devices");
    DITSERVE_CHECK(std::find(ranks.begin(), ranks.begin() + static_cast<std::ptrdiff_t>(i),
                             ranks[i]) == ranks.begin() + static_cast<std::ptrdiff_t>(i),
                   "DeviceGroup: rank ", ranks[i], " repeats (member ", i, ")");
  }
}

std::vector<std::int64_t> even_split(std::int64_t total, int parts) {
  DITSERVE_CHECK(parts > 0, "even_split: parts must be positive, got ", parts);
  DITSERVE_CHECK(total >= 0, "even_split: total must not be negative, got ", total);
  std::vector<std::int64_t> sizes(static_cast<std::size_t>(parts), total / parts);
  for (std::int64_t i = 0; i < total % parts; ++i) ++sizes[static_cast<std::size_t>(i)];
  return sizes;
}

}  // namespace ditserve
