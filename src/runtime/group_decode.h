#pragma once
// The VAE decode of a finished request on the device group the scheduler picked: on one
// device Pipeline::decode; on k devices the VAE's patch-parallel decode
// (parallel/spatial_shards.h: every frame cut into bands of rows, one per member), driven
// by the leader's VAE, whose parameters the context copies to the other members for this
// decode and frees with it. The video is gathered on the leader and returned on the host,
// equal to the one-device decode up to rounding (the members sum GroupNorm statistics in
// another order).

#include <cstdint>

#include "comm/fabric.h"
#include "pipeline/pipeline.h"

namespace ditserve::runtime {

// The largest group a decode of `latent_rows` latent rows by `vae` may run on among
// `devices`: every band needs at least one row; 1 for a VAE without a group decode.
int max_decode_dop(const VideoDecoder& vae, std::int64_t latent_rows, int devices);

// `leader` is the pipeline on fabric.device(group.ranks[0]); the other members need no
// model (the leader's parameters are copied to them).
// REQUIRES: state is done and lives on group.ranks[0]'s device; the caller drives every
// member's device. Returns host f32 [1, 3, frames, H, W], as Pipeline::decode. Throws
// InvalidArgument when the group is invalid, or has several members and the VAE no group
// decode or fewer latent rows than members.
Tensor group_decode(Fabric& fabric, const DeviceGroup& group, Pipeline& leader,
                    const GenerationState& state);

}  // namespace ditserve::runtime
