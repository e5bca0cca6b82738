#include "parallel/sequence_parallel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "models/dit_testing.h"
#include "models/stdit3.h"
#include "parallel/group_forward_testing.h"
#include "parallel/guidance_parallel.h"
#include "parallel/replicate.h"
#include "support/random.h"
#include "tensor/error.h"

// The frame/position sequence-parallel step of a tiny STDiT3 on groups of CPU devices
// against the single-device forward: one step on groups of 1-4 members (grids that the
// group size does not divide included), and a whole denoising run whose group changes
// size and members between steps.

namespace ditserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::uint64_t kSeed = 23;
constexpr double kTolerance = 1e-5;

using testing::first;

class SequenceParallelTest : public testing::GroupForwardTest<STDiT3, FramePositionParallel> {
 protected:
  SequenceParallelTest()
      : GroupForwardTest(stdit3_tiny(),
                         testing::strong_parameters(stdit3_parameters(stdit3_tiny())), kSeed) {}

  // Host inputs: latents [B, 4, T, H, W] (pixels 8x the latent size), captions of 6 tokens.
  DenoiseInputs inputs(const Shape& latent_shape) const {
    const std::int64_t b = latent_shape[0];
    DenoiseInputs in;
    in.latents = testing::random_tensor(latent_shape, 1);
    std::vector<float> ts = {700.0f, 312.5f};
    ts.resize(static_cast<std::size_t>(b), 250.0f);
    in.timesteps = Tensor::from_vector(ts, {b});
    in.captions = testing::random_tensor({b, 6, config_.caption_channels}, 2);
    in.caption_lengths =
        b == 1 ? testing::caption_lengths({4}) : testing::caption_lengths({6, 3});
    in.fps = 24.0f;
    in.height = latent_shape[3] * 8;
    in.width = latent_shape[4] * 8;
    return in;
  }
};

// T = 5 frames of S = 3x5 = 15 positions: 2, 3 and 4 members get uneven frame shards,
// 2 and 4 uneven position shards.
TEST_F(SequenceParallelTest, OneStepOnOneToFourMembersMatchesOneDevice) {
  const DenoiseInputs in = inputs({2, 4, 5, 6, 10});
  const Tensor want = reference_->forward(in);
  for (int k = 1; k <= kRanks; ++k) {
    const Tensor got = group_forward_host(first(k), in);
    ASSERT_EQ(got.shape(), want.shape()) << k << " members";
    EXPECT_LE(testing::relative_error(got, want), kTolerance) << k << " members";
  }
}

TEST_F(SequenceParallelTest, MemberOrderAndRanksDoNotMatter) {
  const DenoiseInputs in = inputs({2, 4, 5, 6, 10});
  const Tensor want = reference_->forward(in);
  for (const DeviceGroup& g : {DeviceGroup{{3}}, DeviceGroup{{3, 1}}, DeviceGroup{{2, 0, 3}},
                               DeviceGroup{{1, 3, 0, 2}}}) {
    const Tensor got = group_forward_host(g, in);
    EXPECT_LE(testing::relative_error(got, want), kTolerance) << g.size() << " members";
  }
}

// Odd latent sizes (patch padding), fewer frames than members (empty frame shards: a
// 3-frame video on 4 members, an image on 2-4), and fewer positions than members.
TEST_F(SequenceParallelTest, UnevenAndEmptyShardsMatchOneDevice) {
  for (const Shape& shape : {Shape{1, 4, 3, 7, 5}, Shape{1, 4, 1, 4, 6}, Shape{2, 4, 6, 2, 4}}) {
    const DenoiseInputs in = inputs(shape);
    const Tensor want = reference_->forward(in);
    for (int k = 2; k <= kRanks; ++k) {
      const Tensor got = group_forward_host(first(k), in);
      ASSERT_EQ(got.shape(), want.shape());
      EXPECT_LE(testing::relative_error(got, want), kTolerance)
          << k << " members, latents " << in.latents.describe();
    }
  }
}

// The tolerance above would catch a block that mixed the wrong tokens: changing one
// frame moves the prediction of another frame, and changing one position another
// position's, by far more than it.
TEST_F(SequenceParallelTest, CouplingIsVisible) {
  const DenoiseInputs in = inputs({1, 4, 5, 6, 10});
  const Tensor base = reference_->forward(in);
  const auto changed_where = [&](std::int64_t frame, std::int64_t row, std::int64_t col,
                                 std::int64_t out_frame, std::int64_t out_row) {
    DenoiseInputs other = in;
    other.latents = testing::random_tensor(in.latents.shape(), 1);
    copy_into(*host_, other.latents.narrow(2, frame, 1).narrow(3, row, 2).narrow(4, col, 2),
              testing::random_tensor({1, 4, 1, 2, 2}, 7, 2.0f, 3.0f));
    const Tensor moved = reference_->forward(other);
    const Tensor a = contiguous(*host_, moved.narrow(2, out_frame, 1).narrow(3, out_row, 2));
    const Tensor b = contiguous(*host_, base.narrow(2, out_frame, 1).narrow(3, out_row, 2));
    return testing::relative_error(a, b);
  };
  EXPECT_GT(changed_where(0, 0, 0, 4, 0), 100 * kTolerance);  // across frames
  EXPECT_GT(changed_where(2, 4, 8, 2, 0), 100 * kTolerance);  // across positions
}

// Six Euler steps z <- z + dt * v whose group changes size (1, 2, 4, 2, 1, 3) and
// members between steps; the latents move to the next group's first member.
TEST_F(SequenceParallelTest, DopScheduleGivesTheOneDeviceLatents) {
  const std::vector<DeviceGroup> schedule = {{{2}},          {{0, 1}}, {{3, 1, 0, 2}},
                                             {{2, 3}},       {{1}},    {{1, 2, 3}}};
  const DenoiseInputs in = inputs({2, 4, 5, 6, 10});
  const int steps = static_cast<int>(schedule.size());
  const float dt = 1.0f / static_cast<float>(steps);
  const auto timesteps = [&](int i) {
    const float t = 1000.0f * (1.0f - static_cast<float>(i) / static_cast<float>(steps));
    return Tensor::from_vector({t, t}, {2});
  };

  Tensor want = in.latents;
  for (int i = 0; i < steps; ++i) {
    DenoiseInputs step = in;
    step.latents = want;
    step.timesteps = timesteps(i);
    want = add_scaled(*host_, want, reference_->forward(step), dt);
  }

  int holder = schedule[0].ranks[0];
  Tensor z = transfer(*host_, in.latents, device(holder));
  for (int i = 0; i < steps; ++i) {
    const DeviceGroup& group = schedule[static_cast<std::size_t>(i)];
    const int root = group.ranks[0];
    if (root != holder) {
      const Tensor moved = device(root).empty(z.shape(), z.dtype());
      devices_.fabric().copy(holder, z, root, moved);
      z = moved;
      holder = root;
    }
    DenoiseInputs step = on_rank(in, root);
    step.latents = z;
    step.timesteps = transfer(*host_, timesteps(i), device(root));
    z = add_scaled(device(root), z, group_forward(group, step), dt);
  }
  const Tensor got = transfer(device(holder), z, *host_);
  EXPECT_GT(testing::relative_error(want, in.latents), 0.05);  // the steps did move z
  EXPECT_LE(testing::relative_error(got, want), kTolerance);
}

// The prompt and null branches on the two halves of the group, each half sharded, equal
// the rows of the single-device forward of the CFG batch.
TEST_F(SequenceParallelTest, GuidanceParallelMatchesTheBatchedForward) {
  const DenoiseInputs in = inputs({2, 4, 5, 6, 10});  // row 0: the prompt, row 1: null
  const Tensor want = reference_->forward(in);
  const auto row = [&](std::int64_t b) {
    DenoiseInputs one = in;
    for (Tensor* t : {&one.latents, &one.timesteps, &one.captions, &one.caption_lengths})
      *t = contiguous(*host_, t->narrow(0, b, 1));
    return one;
  };
  for (const DeviceGroup& g : {DeviceGroup{{0, 1}}, DeviceGroup{{2, 0, 1}},
                               DeviceGroup{{3, 2, 1, 0}}}) {
    const auto [prompt_half, null_half] = guidance_halves(g);
    EXPECT_EQ(prompt_half.size() + null_half.size(), g.size());
    EXPECT_GE(prompt_half.size(), null_half.size());
    const Prepared prompt = prepare_host(prompt_half, row(0));
    const Prepared null = prepare_host(null_half, row(1));
    FramePositionParallel scheme;
    const GuidedPrediction got =
        guidance_parallel_forward(devices_.fabric(), g, scheme, prompt.members, null.members);
    ASSERT_EQ(got.cond.device(), device(g.ranks[0]).device());
    ASSERT_EQ(got.uncond.device(), device(g.ranks[0]).device());
    const auto host = [&](const Tensor& t) { return transfer(device(g.ranks[0]), t, *host_); };
    EXPECT_LE(testing::relative_error(host(got.cond),
                                      contiguous(*host_, want.narrow(0, 0, 1))), kTolerance);
    EXPECT_LE(testing::relative_error(host(got.uncond),
                                      contiguous(*host_, want.narrow(0, 1, 1))), kTolerance);
  }
  EXPECT_THROW(guidance_halves(DeviceGroup{{1}}), InvalidArgument);
}

TEST_F(SequenceParallelTest, ReplicateCopiesToEveryMember) {
  const DeviceGroup group{{2, 0, 3}};
  const Tensor src = transfer(*host_, testing::random_tensor({3, 5}, 4), device(0));
  const std::vector<Tensor> copies = replicate(devices_.fabric(), group, src, 1);
  ASSERT_EQ(copies.size(), 3u);
  for (std::size_t i = 0; i < copies.size(); ++i) {
    EXPECT_EQ(copies[i].device(), device(group.ranks[i]).device());
    EXPECT_EQ(copies[i].to_vector_f32(), src.to_vector_f32());
  }
  EXPECT_THROW(replicate(devices_.fabric(), group, src, 0), InvalidArgument);  // src not on rank 2
  EXPECT_THROW(replicate(devices_.fabric(), group, src, 3), InvalidArgument);
}

TEST_F(SequenceParallelTest, RejectsMembersThatDoNotMatchTheGroup) {
  const DenoiseInputs in = on_rank(inputs({1, 4, 2, 4, 4}), 0);
  const std::unique_ptr<SpatioTemporalStages> stages = models_[0]->prepare_stages(in);
  FramePositionParallel step;
  const auto message = [&](const DeviceGroup& g, std::vector<SpatioTemporalStages*> members) {
    try {
      step.forward(devices_.fabric(), g, members);
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message(DeviceGroup{{0, 1}}, {stages.get()}), HasSubstr("1 members' stages"));
  EXPECT_THAT(message(DeviceGroup{{1}}, {stages.get()}), HasSubstr("rank 1"));
  EXPECT_THAT(message(DeviceGroup{{0, 0}}, {stages.get(), stages.get()}), Not(HasSubstr("no error")));
}

}  // namespace
}  // namespace ditserve
