// The patch-parallel decode of the tiny Wan VAE on groups of CPU devices against the
// single-device decode: every frame cut into 1-4 bands of rows (heights the group size
// does not divide included) over several latent frames, so that every band's causal
// caches and the time-doubling Resamples run; and checks that the tolerance would catch a
// causal conv without its halo rows and bands decoded alone.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/copy.h"
#include "models/wan_vae.h"
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

// Every tensor random and non-trivial (biases and gammas too), so that a wrong halo or a
// band-local attention shows far above the tolerance.
std::vector<ParamSpec> dense(std::vector<ParamSpec> specs) {
  for (ParamSpec& p : specs) {
    p.init = ParamInit::normal;
    p.std = p.name.ends_with("gamma") ? 1.0f : 0.1f;
  }
  return specs;
}

class WanPatchParallelVaeTest : public ::testing::Test {
 protected:
  WanPatchParallelVaeTest()
      : cfg_(wan_vae_tiny()),
        weights_(random_weights(dense(wan_vae_decoder_parameters(cfg_, WanVaeLayout::diffusers)),
                                23)) {
    vae_ = std::make_unique<WanVAE>(cfg_, *weights_, devices_[0], DType::f32);
  }

  WanVAEConfig cfg_;
  std::unique_ptr<WeightSource> weights_;
  testing::CpuDevices devices_{kRanks};
  std::unique_ptr<WanVAE> vae_;
};

// 5 latent rows: bands of 3+2, 2+2+1 and 2+1+1+1 rows; 3 latent frames = 9 frames, so
// every band's caches carry frames and both time-doubling Resamples double.
TEST_F(WanPatchParallelVaeTest, OneToFourMembersMatchOneDevice) {
  const std::int64_t frames = 9;
  const Tensor z = random_tensor({1, 16, 3, 5, 3}, 41, -2.0f, 2.0f);
  const Tensor want = vae_->decode(z, frames);
  ASSERT_EQ(want.shape(), (Shape{1, 3, frames, 40, 24}));
  testing::expect_groups_match_one_device(devices_.fabric(), *vae_, z, frames, want, kTolerance);
}

// The one-device context is decode(), bit for bit; a context serves several decodes (its
// parameter copies are reused), batches of two, and a single latent frame.
TEST_F(WanPatchParallelVaeTest, OneDeviceIsBitIdenticalAndContextsAreReusable) {
  const Tensor z = random_tensor({2, 16, 2, 4, 2}, 43, -2.0f, 2.0f);  // 5 frames, batch 2
  const Tensor want = vae_->decode(z, 5);
  SpatialShardContext one(devices_[0]);
  EXPECT_EQ(vae_->decode_patch_parallel(one, z, 5).to_vector_f32(), want.to_vector_f32());
  SpatialShardContext four(devices_.fabric(), DeviceGroup{{0, 1, 2, 3}});
  for (int repeat = 0; repeat < 2; ++repeat) {
    EXPECT_LE(relative_error(vae_->decode_patch_parallel(four, z, 5).to_vector_f32(),
                             want.to_vector_f32()),
              kTolerance);
  }
  const Tensor single_frame = random_tensor({1, 16, 1, 4, 2}, 44, -2.0f, 2.0f);
  EXPECT_LE(relative_error(vae_->decode_patch_parallel(four, single_frame, 1).to_vector_f32(),
                           vae_->decode(single_frame, 1).to_vector_f32()),
            kTolerance);
}

// Every member decoding with the VAE it loaded itself (as every serving device has) copies
// no parameters and gives the video the copies give; 2 latent frames, so the causal caches
// and the first time doubling run.
TEST_F(WanPatchParallelVaeTest, MembersWithTheirOwnVaeCopyNoParameters) {
  std::vector<std::unique_ptr<WanVAE>> loaded;
  std::vector<WanVAE*> on_rank{vae_.get()};
  for (int r = 1; r < kRanks; ++r) {
    loaded.push_back(std::make_unique<WanVAE>(cfg_, *weights_, devices_[r], DType::f32));
    on_rank.push_back(loaded.back().get());
  }
  const std::int64_t frames = 5;
  const Tensor z = random_tensor({1, 16, 2, 5, 3}, 61, -2.0f, 2.0f);
  const Tensor want = vae_->decode(z, frames);
  testing::expect_members_use_their_own_parameters(devices_.fabric(), *vae_, on_rank, z, frames, want,
                                                   kTolerance);
}

// A causal conv on bands with halo rows is the whole conv; each band convolved alone
// (zero rows at its edges instead of its neighbour's rows) is far outside the tolerance.
TEST_F(WanPatchParallelVaeTest, MissingHaloWouldFail) {
  std::vector<ParamSpec> specs;
  WanCausalConv3d::append_params(specs, "c.", 4, 4, {3, 3, 3});
  const auto src = random_weights(dense(specs), 3);
  Backend& be = devices_[0];
  const WanCausalConv3d conv(WeightLoader(*src, be, DType::f32, "c."), 4, 4, {3, 3, 3});
  const Tensor x = random_tensor({1, 3, 6, 5, 4}, 11);  // [N, T, H, W, C]
  const Tensor want = conv.forward(be, x, nullptr);

  SpatialShardContext ctx(devices_.fabric(), DeviceGroup{{0, 1}});
  const Tensor got = ctx.gather(conv.forward(ctx, ctx.split(x, 2), {}), 2);
  EXPECT_LE(relative_error(got.to_vector_f32(), want.to_vector_f32()), kTolerance);

  const Tensor top = conv.forward(be, contiguous(be, x.narrow(2, 0, 3)), nullptr);
  const Tensor bottom = conv.forward(be, contiguous(be, x.narrow(2, 3, 3)), nullptr);
  const Tensor stitched = concat(be, {top, bottom}, 2);
  EXPECT_GT(relative_error(stitched.to_vector_f32(), want.to_vector_f32()), 100 * kTolerance);
}

// Decoding each band of rows as a video of its own (no halos, attention within the band)
// is far from the whole decode.
TEST_F(WanPatchParallelVaeTest, BandsDecodedAloneWouldFail) {
  Backend& be = devices_[0];
  const Tensor z = random_tensor({1, 16, 2, 4, 3}, 47, -2.0f, 2.0f);
  const Tensor want = vae_->decode(z, 5);
  const Tensor top = vae_->decode(contiguous(be, z.narrow(3, 0, 2)), 5);
  const Tensor bottom = vae_->decode(contiguous(be, z.narrow(3, 2, 2)), 5);
  const Tensor stitched = concat(be, {top, bottom}, 3);
  EXPECT_GT(relative_error(stitched.to_vector_f32(), want.to_vector_f32()), 100 * kTolerance);
}

TEST_F(WanPatchParallelVaeTest, RejectsMoreMembersThanRows) {
  const Tensor z = random_tensor({1, 16, 1, 2, 3}, 53);
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
