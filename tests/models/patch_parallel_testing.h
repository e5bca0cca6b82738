#pragma once
// The check both VAEs' patch-parallel tests share: decoding on groups of 1 to 4 CPU
// members (uneven bands, members in any order) gives the single-device video.

#include <gtest/gtest.h>

#include <cstdint>

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

}  // namespace ditserve::testing
