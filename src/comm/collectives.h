#pragma once
// Collectives over a DeviceGroup of a Fabric. inputs[i] and outputs[i] belong to the
// group's i-th member (they live on fabric.device(group.ranks[i])). Uneven shards are
// allowed everywhere: sizes say how long each member's piece is.

#include <cstdint>
#include <vector>

#include "comm/fabric.h"

namespace ditserve {

// Member i cuts inputs[i] along split_dim into pieces of split_sizes[0..n) and sends piece
// j to member j; member j's output is the concatenation, along concat_dim in member order,
// of the pieces it received. (Sequence parallelism's switch from frame shards to position
// shards: split by positions, concatenate by frames.)
std::vector<Tensor> all_to_all(Fabric& fabric, const DeviceGroup& group,
                               const std::vector<Tensor>& inputs, std::int64_t split_dim,
                               const std::vector<std::int64_t>& split_sizes,
                               std::int64_t concat_dim);

// Every member gets the concatenation of all inputs along dim, in member order.
std::vector<Tensor> all_gather(Fabric& fabric, const DeviceGroup& group,
                               const std::vector<Tensor>& inputs, std::int64_t dim);

// The concatenation of all inputs along dim, on member `root`.
Tensor gather(Fabric& fabric, const DeviceGroup& group, const std::vector<Tensor>& inputs,
              std::int64_t dim, int root);

// `input` lives on member `root`; member i gets the i-th piece along dim (sizes[i] long).
std::vector<Tensor> scatter(Fabric& fabric, const DeviceGroup& group, const Tensor& input,
                            int root, std::int64_t dim, const std::vector<std::int64_t>& sizes);

// Every member gets the element-wise sum of all inputs (equal shapes; f32, or bf16/f16
// accumulated in f32 and rounded once). The sum is taken in member order on member 0 and
// copied to the others, so every member holds the same bits whatever the device mix.
std::vector<Tensor> all_reduce(Fabric& fabric, const DeviceGroup& group,
                               const std::vector<Tensor>& inputs);

// Point to point: a contiguous copy, on member `to`, of `src` living on member `from`
// (send/recv of a one-process fabric: the copy is ordered after work queued on both).
// from == to gives a copy on the same device.
Tensor send_recv(Fabric& fabric, const DeviceGroup& group, const Tensor& src, int from, int to);

}  // namespace ditserve
