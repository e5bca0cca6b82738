#pragma once
// The check both VAEs' patch-parallel tests share: decoding on groups of 1 to 4 CPU
// members (uneven bands, members in any order) gives the single-device video.

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "comm/fabric.h"
#include "parallel/spatial_shards.h"
#include "support/random.h"

namespace ditserve::testing {

// Vae: OpenSoraVAE or WanVAE (decode_patch_parallel(ctx, latents, frames)). The fabric
// holds at least 4 CPU devices; `want` is the single-device decode of z.
template <typename Vae>
void expect_groups_match_one_device(Fabric& fabric, Vae& vae, const Tensor& z,
                                    std::int64_t frames, const Tensor& want, double tolerance) {
  for (const DeviceGroup& group :
       {DeviceGroup{{1}}, DeviceGroup{{0, 1}}, DeviceGroup{{2, 0, 3}}, DeviceGroup{{3, 1, 0, 2}}}) {
    SpatialShardContext ctx(fabric, group);
    const Tensor got = vae.decode_patch_parallel(ctx, z, frames);
    ASSERT_EQ(got.device(), Device::cpu(group.ranks[0]));
    ASSERT_EQ(got.shape(), want.shape());
    const double err = relative_error(got.to_vector_f32(), want.to_vector_f32());
    EXPECT_LE(err, tolerance) << group.size() << " members";
    if (group.size() == 1) {
      EXPECT_EQ(err, 0.0) << "one member is the single-device path";
    } else {
      EXPECT_GT(ctx.bytes_exchanged(), 0);
    }
  }
}

// `on_rank[r]` is the same model as `vae` (same weights) loaded on the fabric's rank r;
// `vae` itself lives on rank 0. Members that run their bands with their own loaded
// parameters (MemberParams) copy none and give the same video, bit for bit, as members
// given copies of `vae`'s; a member without its own copy still gets one.
template <typename Vae>
void expect_members_use_their_own_parameters(Fabric& fabric, Vae& vae,
                                              const std::vector<Vae*>& on_rank, const Tensor& z,
                                              std::int64_t frames, const Tensor& want,
                                              double tolerance) {
  for (const DeviceGroup& group :
       {DeviceGroup{{0, 1}}, DeviceGroup{{2, 0, 3}}, DeviceGroup{{3, 1, 0, 2}}}) {
    SpatialShardContext copies(fabric, group);
    const std::vector<float> copied = vae.decode_patch_parallel(copies, z, frames).to_vector_f32();
    EXPECT_GT(copies.param_bytes_copied(), 0) << group.size() << " members given copies";

    MemberParams own{vae.loaded_parameters(), {}};
    for (const int r : group.ranks) {
      own.members.push_back(on_rank[static_cast<std::size_t>(r)]->loaded_parameters());
    }
    ASSERT_FALSE(own.model.empty());
    SpatialShardContext mine(fabric, group, own);
    const Tensor got = vae.decode_patch_parallel(mine, z, frames);
    EXPECT_EQ(mine.param_bytes_copied(), 0) << group.size() << " members with their own";
    EXPECT_EQ(got.to_vector_f32(), copied) << group.size() << " members";
    EXPECT_LE(relative_error(got.to_vector_f32(), want.to_vector_f32()), tolerance);

    // The last member without a copy of its own: only it is sent parameters.
    own.members.back().clear();
    SpatialShardContext some(fabric, group, own);
    EXPECT_EQ(vae.decode_patch_parallel(some, z, frames).to_vector_f32(), copied);
    EXPECT_GT(some.param_bytes_copied(), 0);
    if (group.size() > 2) {  // two members off the model's device, one of them still copied
      EXPECT_LT(some.param_bytes_copied(), copies.param_bytes_copied()) << group.size();
    }
  }
}

}  // namespace ditserve::testing
