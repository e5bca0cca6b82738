#pragma once
// The VAE decode of a finished request on the device group the scheduler picked: on one
// device Pipeline::decode; on k devices the VAE's patch-parallel decode
// (parallel/spatial_shards.h: every frame cut into bands of rows, one per member), driven
// by the leader's VAE. Every serving device has loaded the models, so each member runs its
// bands with its own VAE parameters and a decode copies none; a member without a pipeline
// gets the leader's parameters copied for this decode and freed with it. The video is
// gathered on the leader and returned on the host, equal to the one-device decode up to
// rounding (the members sum GroupNorm statistics in another order).

#include <cstdint>
#include <vector>

#include "comm/fabric.h"
#include "pipeline/pipeline.h"

namespace ditserve::runtime {

// The largest group a decode of `latent_rows` latent rows by `vae` may run on among
// `devices`: every band needs at least one row; 1 for a VAE without a group decode.
int max_decode_dop(const VideoDecoder& vae, std::int64_t latent_rows, int devices);

// `members[i]` is the pipeline loaded on fabric.device(group.ranks[i]) (the same model on
// every member), or null where that device has none; members[0], the leader's, is
// required and drives the decode.
// REQUIRES: state is done and lives on group.ranks[0]'s device; the caller drives every
// member's device. Returns host f32 [1, 3, frames, H, W], as Pipeline::decode. Throws
// InvalidArgument when the group is invalid, `members` does not match it, or the group
// has several members and the VAE no group decode or fewer latent rows than members.
Tensor group_decode(Fabric& fabric, const DeviceGroup& group, const std::vector<Pipeline*>& members,
                    const GenerationState& state);

// The same with the leader's pipeline alone: its VAE parameters are copied to the other
// members for this decode.
Tensor group_decode(Fabric& fabric, const DeviceGroup& group, Pipeline& leader,
                    const GenerationState& state);

}  // namespace ditserve::runtime
