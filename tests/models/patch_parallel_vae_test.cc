// The patch-parallel decode of the tiny Open-Sora VAE on groups of CPU devices against the
// single-device decode: every frame cut into 1-4 bands of rows (heights that the group
// size does not divide included), and a check that the tolerance would catch bands
// decoded without their neighbours.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/copy.h"
#include "models/opensora_vae.h"
#include "parallel/spatial_shards.h"
#include "patch_parallel_testing.h"
#include "support/cpu_devices.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using testing::random_tensor;
using testing::relative_error;

constexpr int kRanks = 4;
constexpr double kTolerance = 1e-5;

// Larger than Open-Sora's init, and non-zero biases, so that every conv and norm shapes
// the output (a wrong halo or a per-band GroupNorm shows far above the tolerance).
std::vector<ParamSpec> strong_parameters(const OpenSoraVAEConfig& cfg) {
  std::vector<ParamSpec> specs = opensora_vae_decoder_parameters(cfg);
  for (ParamSpec& s : specs) {
    if (s.name == "scale" || s.name == "shift") continue;
    if (s.init == ParamInit::zeros) s.init = ParamInit::normal;
    if (s.init == ParamInit::normal) s.std = 0.2f;
  }
  return specs;
}

class PatchParallelVaeTest : public ::testing::Test {
 protected:
  PatchParallelVaeTest()
      : cfg_(opensora_vae_tiny()), weights_(random_weights(strong_parameters(cfg_), 31)) {
    vae_ = std::make_unique<OpenSoraVAE>(cfg_, *weights_, devices_[0], DType::f32);
  }

  Tensor latents(std::int64_t frames, std::int64_t h, std::int64_t w, std::uint32_t seed) {
    return random_tensor({1, 4, vae_->latent_frames(frames), h, w}, seed, -2.0f, 2.0f);
  }

  OpenSoraVAEConfig cfg_;
  std::unique_ptr<WeightSource> weights_;
  testing::CpuDevices devices_{kRanks};
  std::unique_ptr<OpenSoraVAE> vae_;
};

// 5 latent rows: bands of 3+2, 2+2+1 and 2+1+1+1 rows; 18 frames = a 17-frame chunk and
// a 1-frame tail, so the temporal chunks are concatenated on every band.
TEST_F(PatchParallelVaeTest, OneToFourMembersMatchOneDevice) {
  const std::int64_t frames = 18;
  const Tensor z = latents(frames, 5, 3, 41);
  const Tensor want = vae_->decode(z, frames);
  ASSERT_EQ(want.shape(), (Shape{1, 3, frames, 40, 24}));
  testing::expect_groups_match_one_device(devices_.fabric(), *vae_, z, frames, want, kTolerance);
}

// The one-device context is the plain path, bit for bit; a context serves several decodes
// (its parameter copies are reused) and batches of two.
TEST_F(PatchParallelVaeTest, OneDeviceIsBitIdenticalAndContextsAreReusable) {
  const Tensor z = random_tensor({2, 4, 2, 6, 3}, 43, -2.0f, 2.0f);  // 5 frames, batch 2
  const Tensor want = vae_->decode(z, 5);
  SpatialShardContext one(devices_[0]);
  EXPECT_EQ(
      relative_error(vae_->decode_patch_parallel(one, z, 5).to_vector_f32(), want.to_vector_f32()),
      0.0);
  SpatialShardContext four(devices_.fabric(), DeviceGroup{{0, 1, 2, 3}});
  for (int repeat = 0; repeat < 2; ++repeat) {
    EXPECT_LE(relative_error(vae_->decode_patch_parallel(four, z, 5).to_vector_f32(),
                             want.to_vector_f32()),
              kTolerance);
  }
}

// Decoding each band of rows as an image of its own (no halo rows, per-band GroupNorm
// statistics, attention within the band) is far from the whole decode.
TEST_F(PatchParallelVaeTest, BandsDecodedAloneWouldFail) {
  const Tensor z = latents(5, 4, 3, 47);
  const Tensor want = vae_->decode(z, 5);
  const Tensor top = vae_->decode(contiguous(devices_[0], z.narrow(3, 0, 2)), 5);
  const Tensor bottom = vae_->decode(contiguous(devices_[0], z.narrow(3, 2, 2)), 5);
  const Tensor stitched = concat(devices_[0], {top, bottom}, 3);
  EXPECT_GT(relative_error(stitched.to_vector_f32(), want.to_vector_f32()), 100 * kTolerance);
}

// Every member decoding with the VAE it loaded itself (as every serving device has) copies
// no parameters and gives the video the copies give.
TEST_F(PatchParallelVaeTest, MembersWithTheirOwnVaeCopyNoParameters) {
  std::vector<std::unique_ptr<OpenSoraVAE>> loaded;
  std::vector<OpenSoraVAE*> on_rank{vae_.get()};
  for (int r = 1; r < kRanks; ++r) {
    loaded.push_back(std::make_unique<OpenSoraVAE>(cfg_, *weights_, devices_[r], DType::f32));
    on_rank.push_back(loaded.back().get());
  }
  const std::int64_t frames = 5;
  const Tensor z = latents(frames, 5, 3, 59);
  const Tensor want = vae_->decode(z, frames);
  testing::expect_members_use_their_own_parameters(devices_.fabric(), *vae_, on_rank, z, frames, want,
                                                   kTolerance);
}

TEST_F(PatchParallelVaeTest, RejectsMoreMembersThanRows) {
  const Tensor z = latents(1, 2, 3, 53);
  SpatialShardContext ctx(devices_.fabric(), DeviceGroup{{0, 1, 2}});
  try {
    vae_->decode_patch_parallel(ctx, z, 1);
    ADD_FAILURE() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("rows"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ditserve
