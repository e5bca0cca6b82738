#include "parallel/sharded_tensor.h"

#include <algorithm>
#include <string>

#include "comm/collectives.h"
#include "kernels/copy.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

std::vector<std::int64_t> starts(const std::vector<std::int64_t>& sizes) {
  std::vector<std::int64_t> out(sizes.size(), 0);
  for (std::size_t i = 1; i < sizes.size(); ++i) out[i] = out[i - 1] + sizes[i - 1];
  return out;
}

void check_state(const Fabric& fabric, const ShardedTensor& state) {
  state.group.validate(fabric);
  DITSERVE_CHECK(state.shards.size() == state.group.ranks.size(), "ShardedTensor: ",
                 state.shards.size(), " shards for a group of ", state.group.size());
  const Tensor& s0 = state.shards[0];
  DITSERVE_CHECK(s0.defined() && state.dim >= 0 && state.dim < s0.dim(),
                 "ShardedTensor: dim ", state.dim, " outside shard 0 ",
                 s0.defined() ? s0.describe() : std::string("undefined"));
  const std::vector<std::int64_t> sizes = even_split(state.rows(), state.group.size());
  for (std::size_t i = 0; i < state.shards.size(); ++i) {
    const Tensor& s = state.shards[i];
    Shape want = s0.shape();
    want[static_cast<std::size_t>(state.dim)] = sizes[i];
    DITSERVE_CHECK(s.defined() && s.shape() == want && s.dtype() == s0.dtype() &&
                       s.device() == fabric.device(state.group.ranks[i]).device(),
                   "ShardedTensor: shard ", i, " is ",
                   s.defined() ? s.describe() : std::string("undefined"),
                   "; even_split wants ", sizes[i], " rows along dim ", state.dim, " on ",
                   fabric.device(state.group.ranks[i]).device().str());
  }
}

}  // namespace

std::int64_t ShardedTensor::rows() const {
  std::int64_t total = 0;
  for (const Tensor& s : shards) total += s.size(dim);
  return total;
}

ShardedTensor shard(Fabric& fabric, const DeviceGroup& group, const Tensor& full, int from,
                    std::int64_t dim) {
  group.validate(fabric);
  DITSERVE_CHECK(full.defined() && dim >= 0 && dim < full.dim(), "shard: dim ", dim,
                 " outside ", full.defined() ? full.describe() : std::string("undefined"));
  ShardedTensor out{group, dim, {}};
  out.shards = scatter(fabric, group, full, from, dim, even_split(full.size(dim), group.size()));
  return out;
}

Tensor unshard(Fabric& fabric, const ShardedTensor& state, int to) {
  check_state(fabric, state);
  return gather(fabric, state.group, state.shards, state.dim, to);
}

ShardedTensor reshard(Fabric& fabric, const ShardedTensor& state, const DeviceGroup& to,
                      ReshardStats* stats) {
  check_state(fabric, state);
  to.validate(fabric);
  const std::int64_t rows = state.rows();
  const std::vector<std::int64_t> old_sizes = even_split(rows, state.group.size());
  const std::vector<std::int64_t> old_starts = starts(old_sizes);
  const std::vector<std::int64_t> new_sizes = even_split(rows, to.size());
  const std::vector<std::int64_t> new_starts = starts(new_sizes);
  const Tensor& first = state.shards[0];  // the largest shard: empty only when all are
  const std::int64_t row_bytes =
      rows == 0 ? 0 : static_cast<std::int64_t>(first.nbytes()) / first.size(state.dim);

  ShardedTensor out{to, state.dim, {}};
  for (std::size_t j = 0; j < to.ranks.size(); ++j) {
    const int rank = to.ranks[j];
    const std::int64_t lo = new_starts[j], hi = lo + new_sizes[j];
    // Unchanged rows on the same device: keep the shard as it is.
    bool kept = false;
    for (std::size_t i = 0; i < state.group.ranks.size() && !kept; ++i) {
      if (state.group.ranks[i] == rank && old_starts[i] == lo && old_sizes[i] == new_sizes[j]) {
        out.shards.push_back(state.shards[i]);
        if (stats != nullptr) stats->bytes_kept += new_sizes[j] * row_bytes;
        kept = true;
      }
    }
    if (kept) continue;
    Shape shape = first.shape();
    shape[static_cast<std::size_t>(state.dim)] = new_sizes[j];
    Backend& be = fabric.device(rank);
    const Tensor dst = be.empty(shape, first.dtype());
    for (std::size_t i = 0; i < state.group.ranks.size(); ++i) {
      const std::int64_t from = std::max(lo, old_starts[i]);
      const std::int64_t until = std::min(hi, old_starts[i] + old_sizes[i]);
      if (from >= until) continue;
      const Tensor src = state.shards[i].narrow(state.dim, from - old_starts[i], until - from);
      const Tensor into = dst.narrow(state.dim, from - lo, until - from);
      const std::int64_t bytes = (until - from) * row_bytes;
      if (state.group.ranks[i] == rank) {
        copy_into(be, into, src);
        if (stats != nullptr) stats->bytes_kept += bytes;
      } else {
        fabric.copy(state.group.ranks[i], src, rank, into);
        if (stats != nullptr) stats->bytes_moved += bytes;
      }
    }
    out.shards.push_back(dst);
  }
  return out;
}

}  // namespace ditserve
