#include "parallel/replicate.h"

#include <string>

#include "tensor/error.h"

namespace ditserve {

std::vector<Tensor> replicate(Fabric& fabric, const DeviceGroup& group, const Tensor& src,
                              int from) {
  group.validate(fabric);
  DITSERVE_CHECK(from >= 0 && from < group.size(), "replicate: source member ", from,
                 " outside 0..", group.size() - 1);
  const int source = group.ranks[static_cast<std::size_t>(from)];
  DITSERVE_CHECK(src.defined() && src.device() == fabric.device(source).device(),
                 "replicate: src must live on rank ", source, " (",
                 fabric.device(source).device().str(), "), got ",
                 src.defined() ? src.describe() : std::string("undefined"));
  std::vector<Tensor> out;
  out.reserve(group.ranks.size());
  for (const int rank : group.ranks) {
    if (rank == source) {
      out.push_back(src);
      continue;
    }
    const Tensor dst = fabric.device(rank).empty(src.shape(), src.dtype());
    fabric.copy(source, src, rank, dst);
    out.push_back(dst);
  }
  return out;
}

}  // namespace ditserve
