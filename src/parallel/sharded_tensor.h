#pragma once
// A request's state split along one dimension (latents by frame) over a group's members,
// and its move from one group to another between two denoising steps, copying only the
// rows whose device changes.

#include <cstdint>
#include <vector>

#include "comm/fabric.h"

namespace ditserve {

// shards[i] lives on member i of `group` and holds rows [offset_i, offset_i + size_i) along
// `dim` of the whole tensor, the sizes being even_split(rows, group.size()) in member order
// (a member may hold none).
struct ShardedTensor {
  DeviceGroup group;
  std::int64_t dim = 0;
  std::vector<Tensor> shards;

  std::int64_t rows() const;  // the whole tensor's size along dim
};

// Splits `full` (on group member `from`) along dim into even shards, one per member.
ShardedTensor shard(Fabric& fabric, const DeviceGroup& group, const Tensor& full, int from,
                    std::int64_t dim);
// The whole tensor on member `to` of state.group.
Tensor unshard(Fabric& fabric, const ShardedTensor& state, int to);

struct ReshardStats {
  std::int64_t bytes_moved = 0;  // copied between devices
  std::int64_t bytes_kept = 0;   // already on the device that owns them next
};

// The same tensor sharded over `to` (any size and overlap with state.group). A row that
// stays on its device is not moved; a member whose rows are all unchanged keeps its shard
// tensor. Adds what it copied to *stats when given.
// Throws InvalidArgument when `to` is invalid or `state` inconsistent.
ShardedTensor reshard(Fabric& fabric, const ShardedTensor& state, const DeviceGroup& to,
                      ReshardStats* stats = nullptr);

}  // namespace ditserve
