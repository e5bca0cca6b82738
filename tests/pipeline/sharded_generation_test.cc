// A request's whole denoising state (frame-sharded latents, captions, step index, sampler
// options) on groups of CPU devices: moves between groups copy only what the new members
// lack, and a run whose group changes size and members between steps gives the latents
// of the single-device GenerationState.

#include "pipeline/sharded_generation.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "kernels/copy.h"
#include "models/dit_testing.h"
#include "models/stdit3.h"
#include "parallel/group_forward_testing.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

constexpr double kTolerance = 1e-5;

// FramePositionParallel, counting which of its forwards the state calls.
class CountingScheme final : public SequenceParallelStep {
 public:
  Tensor forward(Fabric& f, const DeviceGroup& g,
                 const std::vector<SpatioTemporalStages*>& m) override {
    ++whole;
    return inner.forward(f, g, m);
  }
  std::vector<Tensor> forward_frame_sharded(Fabric& f, const DeviceGroup& g,
                                            const std::vector<SpatioTemporalStages*>& m) override {
    ++sharded;
    return inner.forward_frame_sharded(f, g, m);
  }
  FramePositionParallel inner;
  int whole = 0, sharded = 0;
};

// Runs both forwards of FramePositionParallel on the same stages and keeps their results.
class CapturingScheme final : public SequenceParallelStep {
 public:
  Tensor forward(Fabric& f, const DeviceGroup& g,
                 const std::vector<SpatioTemporalStages*>& m) override {
    return inner.forward(f, g, m);
  }
  std::vector<Tensor> forward_frame_sharded(Fabric& f, const DeviceGroup& g,
                                            const std::vector<SpatioTemporalStages*>& m) override {
    whole = inner.forward(f, g, m);
    pieces = inner.forward_frame_sharded(f, g, m);
    return pieces;
  }
  FramePositionParallel inner;
  Tensor whole;
  std::vector<Tensor> pieces;
};

// The sequence-parallel tests' fixture (tiny STDiT3 on four CPU devices and the host,
// weights in which every block shows).
class ShardedGenerationTest : public testing::GroupForwardTest<STDiT3, FramePositionParallel> {
 protected:
  ShardedGenerationTest()
      : GroupForwardTest(stdit3_tiny(), testing::strong_parameters(stdit3_parameters(stdit3_tiny())),
                         19) {}

  // A 6-step state of T latent frames (host tensors unless moved), 8x8-pixel latents.
  GenerationState state(std::int64_t frames, Backend& be) const {
    SamplerOptions options;
    options.steps = 6;
    options.height = 4 * 8;
    options.width = 6 * 8;
    options.frames = frames;
    Tensor lengths = Tensor::empty_host({2}, DType::i32);
    lengths.data<std::int32_t>()[0] = lengths.data<std::int32_t>()[1] = 5;
    const auto to = [&](const Tensor& t) { return transfer(*host_, t, be); };
    return GenerationState(to(testing::random_tensor({1, 4, frames, 4, 6}, 3)),
                           to(testing::random_tensor({2, 6, config_.caption_channels}, 4)),
                           to(lengths), options);
  }

  ShardedGenerationState::PrepareStages prepare_on(const DeviceGroup& group) {
    return [this, group](int member, const DenoiseInputs& in) {
      return models_[static_cast<std::size_t>(group.ranks[static_cast<std::size_t>(member)])]
          ->prepare_stages(in);
    };
  }
};

// Six steps on 1, 2, 4, 2, 1, 3 members with changing ranks, the whole state moving
// between groups, equal the single-device run; and the state comes back whole.
TEST_F(ShardedGenerationTest, DopScheduleWithChangingMembersGivesTheOneDeviceLatents) {
  GenerationState want = state(5, *host_);
  while (!want.done()) want.step(*host_, *reference_);

  const std::vector<DeviceGroup> schedule = {{{2}},    {{0, 1}}, {{3, 1, 0, 2}},
                                             {{2, 3}}, {{1}},    {{1, 2, 3}}};
  ShardedGenerationState s =
      ShardedGenerationState::shard(devices_.fabric(), state(5, devices_[0]), 0, schedule[0]);
  FramePositionParallel scheme;
  for (const DeviceGroup& group : schedule) {
    s.move_to(devices_.fabric(), group);
    ASSERT_EQ(s.group().ranks, group.ranks);
    s.step(devices_.fabric(), scheme, prepare_on(group));
  }
  EXPECT_TRUE(s.done());
  EXPECT_EQ(s.step_index(), 6u);
  const GenerationState back = s.gather(devices_.fabric(), 2);  // rank 3
  EXPECT_TRUE(back.done());
  EXPECT_EQ(back.latents().device(), Device::cpu(3));
  const Tensor got = transfer(devices_[3], back.latents(), *host_);
  const GenerationState start = state(5, *host_);
  EXPECT_GT(testing::relative_error(want.latents(), start.latents()), 0.05);  // it did move
  EXPECT_LE(testing::relative_error(got, want.latents()), kTolerance);
}

// The same schedule with the prediction left sharded by frame (each member's final layer
// on its own frames, guidance per member): the same latents.
TEST_F(ShardedGenerationTest, FrameShardedPredictionGivesTheOneDeviceLatents) {
  GenerationState want = state(5, *host_);
  while (!want.done()) want.step(*host_, *reference_);
  const std::vector<DeviceGroup> schedule = {{{2}},    {{0, 1}}, {{3, 1, 0, 2}},
                                             {{2, 3}}, {{1}},    {{1, 2, 3}}};
  ShardedGenerationState s =
      ShardedGenerationState::shard(devices_.fabric(), state(5, devices_[0]), 0, schedule[0]);
  CountingScheme scheme;
  for (const DeviceGroup& group : schedule) {
    s.move_to(devices_.fabric(), group);
    s.step(devices_.fabric(), scheme, prepare_on(group), /*sharded_prediction=*/true);
  }
  EXPECT_EQ(scheme.whole, 0);  // no prediction was gathered on one member
  EXPECT_EQ(scheme.sharded, 6);
  const Tensor got = transfer(devices_[1], s.gather(devices_.fabric(), 0).latents(), *host_);
  EXPECT_LE(testing::relative_error(got, want.latents()), kTolerance);
}

// FramePositionParallel's frame-sharded prediction: member i holds even_split's frames,
// and together they are forward()'s prediction (5 frames on 1-4 members, 4 holds 2+1+1+1).
TEST_F(ShardedGenerationTest, FrameShardedForwardEqualsTheGatheredOne) {
  for (const DeviceGroup& group :
       {DeviceGroup{{1}}, DeviceGroup{{0, 2}}, DeviceGroup{{3, 0, 1}}, DeviceGroup{{2, 3, 0, 1}}}) {
    ShardedGenerationState s = ShardedGenerationState::shard(devices_.fabric(), state(5, *host_), 0, group);
    CapturingScheme capture;
    s.step(devices_.fabric(), capture, prepare_on(group), /*sharded_prediction=*/true);
    const std::vector<std::int64_t> frames = even_split(5, group.size());
    ASSERT_EQ(capture.pieces.size(), frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i) {
      EXPECT_EQ(capture.pieces[i].device(), Device::cpu(group.ranks[i]));
      EXPECT_EQ(capture.pieces[i].size(2), frames[i]);
    }
    std::vector<Tensor> on_host;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      on_host.push_back(transfer(devices_[group.ranks[i]],
                                 capture.pieces[i], *host_));
    }
    const Tensor joined = concat(*host_, on_host, 2);
    const Tensor whole =
        transfer(devices_[group.ranks[0]], capture.whole, *host_);
    EXPECT_LE(testing::relative_error(joined, whole), kTolerance) << group.size() << " members";
  }
}

// Between two steps the latents stay sharded by frame on the group's members.
TEST_F(ShardedGenerationTest, LatentsStayShardedByFrame) {
  const DeviceGroup group{{3, 0, 1}};
  ShardedGenerationState s = ShardedGenerationState::shard(devices_.fabric(), state(5, *host_), 0, group);
  FramePositionParallel scheme;
  s.step(devices_.fabric(), scheme, prepare_on(group));
  ASSERT_EQ(s.latents().shards.size(), 3u);
  const std::vector<std::int64_t> frames = even_split(5, 3);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(s.latents().shards[i].device(), Device::cpu(group.ranks[i]));
    EXPECT_EQ(s.latents().shards[i].shape(), (Shape{1, 4, frames[i], 4, 6}));
    EXPECT_EQ(s.captions()[i].device(), Device::cpu(group.ranks[i]));
  }
}

// A = {0, 1} -> {1, 2}: in the order least_moving_order picks ({2, 1}) only the frames
// and captions that cpu:2 lacks move; cpu:1 keeps its frames and captions.
TEST_F(ShardedGenerationTest, MovesOnlyWhatNewMembersLack) {
  const GenerationState start = state(4, devices_[0]);
  const std::int64_t frame_bytes = 4 * 4 * 6 * 4;  // C x h x w f32
  const std::int64_t caption_bytes =
      static_cast<std::int64_t>(start.captions().nbytes() + start.caption_lengths().nbytes());

  ShardedGenerationState s = ShardedGenerationState::shard(devices_.fabric(), start, 0, DeviceGroup{{0, 1}});
  const DeviceGroup to = least_moving_order(s.latents(), {1, 2});
  EXPECT_EQ(to.ranks, (std::vector<int>{2, 1}));
  const Tensor kept_shard = s.latents().shards[1];  // frames 2, 3 on cpu:1
  StateMoveStats stats;
  s.move_to(devices_.fabric(), to, &stats);
  EXPECT_EQ(stats.latent_bytes_moved, 2 * frame_bytes);  // frames 0, 1: cpu:0 -> cpu:2
  EXPECT_EQ(stats.latent_bytes_kept, 2 * frame_bytes);
  EXPECT_EQ(stats.caption_bytes_moved, caption_bytes);  // to cpu:2 only
  EXPECT_EQ(stats.caption_bytes_kept, caption_bytes);   // cpu:1 had them
  EXPECT_EQ(stats.bytes_moved(), 2 * frame_bytes + caption_bytes);
  EXPECT_EQ(s.latents().shards[1].raw_data(), kept_shard.raw_data());  // not copied

  // The given order {1, 2} would move every frame.
  ShardedGenerationState t = ShardedGenerationState::shard(devices_.fabric(), start, 0, DeviceGroup{{0, 1}});
  StateMoveStats naive;
  t.move_to(devices_.fabric(), DeviceGroup{{1, 2}}, &naive);
  EXPECT_EQ(naive.latent_bytes_moved, 4 * frame_bytes);

  // Same group: nothing moves.
  StateMoveStats none;
  s.move_to(devices_.fabric(), to, &none);
  EXPECT_EQ(none.bytes_moved(), 0);

  // The state is intact after the moves.
  const Tensor whole = transfer(devices_[2], s.gather(devices_.fabric(), 0).latents(), *host_);
  EXPECT_EQ(whole.to_vector_f32(),
            transfer(devices_[0], start.latents(), *host_).to_vector_f32());
}

TEST_F(ShardedGenerationTest, RejectsOtherSamplersAndBadGroups) {
  GenerationState start = state(4, devices_[0]);
  EXPECT_THROW(ShardedGenerationState::shard(devices_.fabric(), start, 0, DeviceGroup{{0, 7}}),
               InvalidArgument);
  ShardedGenerationState s = ShardedGenerationState::shard(devices_.fabric(), start, 0, DeviceGroup{{0}});
  EXPECT_THROW(s.move_to(devices_.fabric(), DeviceGroup{{1, 1}}), InvalidArgument);
  SamplerOptions unipc = start.options();
  unipc.sampler = SamplerKind::unipc;
  const GenerationState other(start.latents(), start.captions(), start.caption_lengths(), unipc);
  try {
    ShardedGenerationState::shard(devices_.fabric(), other, 0, DeviceGroup{{0, 1}});
    ADD_FAILURE() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("sampler"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ditserve
