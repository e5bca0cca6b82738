#include "parallel/sharded_tensor.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "comm/collectives.h"
#include "kernels/copy.h"
#include "support/cpu_devices.h"
#include "support/random.h"
#include "tensor/error.h"

// Moving frame-sharded latents between groups of CPU devices: the result is the same
// tensor, and exactly the frames whose device changes are copied.

namespace ditserve {
namespace {

constexpr int kRanks = 4;

class ShardedTensorTest : public ::testing::Test {
 protected:
  ShardedTensorTest() : host_(make_backend(Device::cpu())) {
  }

  ShardedTensor sharded_latents(const DeviceGroup& group) {
    const Tensor on_root = transfer(*host_, latents_, devices_[group.ranks[0]]);
    return shard(devices_.fabric(), group, on_root, 0, /*dim=*/2);
  }

  Tensor whole(const ShardedTensor& state) {
    return transfer(devices_[state.group.ranks[0]], unshard(devices_.fabric(), state, 0), *host_);
  }

  // Bytes of the frames whose device differs between the two layouts, counted frame by
  // frame from even_split.
  static std::int64_t must_move(const DeviceGroup& a, const DeviceGroup& b, std::int64_t frames,
                                std::int64_t frame_bytes) {
    const auto owners = [&](const DeviceGroup& g) {
      std::vector<int> owner;
      const std::vector<std::int64_t> sizes = even_split(frames, g.size());
      for (std::size_t i = 0; i < sizes.size(); ++i)
        owner.insert(owner.end(), static_cast<std::size_t>(sizes[i]), g.ranks[i]);
      return owner;
    };
    const std::vector<int> before = owners(a), after = owners(b);
    std::int64_t bytes = 0;
    for (std::size_t f = 0; f < before.size(); ++f)
      if (before[f] != after[f]) bytes += frame_bytes;
    return bytes;
  }

  // [B=2, C=4, T=5, H=6, W=10] f32: one frame is 2*4*6*10*4 bytes.
  const Tensor latents_ = testing::random_tensor({2, 4, 5, 6, 10}, 5);
  static constexpr std::int64_t kFrameBytes = 2 * 4 * 6 * 10 * 4;
  std::unique_ptr<Backend> host_;
  testing::CpuDevices devices_{kRanks};
};

TEST_F(ShardedTensorTest, ShardsFollowEvenSplitOnTheirMembers) {
  const DeviceGroup group{{2, 0, 3}};
  const ShardedTensor state = sharded_latents(group);
  ASSERT_EQ(state.shards.size(), 3u);
  const std::vector<std::int64_t> sizes{2, 2, 1};
  std::int64_t start = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(state.shards[i].device(), devices_[group.ranks[i]].device());
    ASSERT_EQ(state.shards[i].size(2), sizes[i]);
    const Tensor want = contiguous(*host_, latents_.narrow(2, start, sizes[i]));
    EXPECT_EQ(transfer(devices_[group.ranks[i]], state.shards[i], *host_).to_vector_f32(),
              want.to_vector_f32());
    start += sizes[i];
  }
  EXPECT_EQ(state.rows(), 5);
  EXPECT_EQ(whole(state).to_vector_f32(), latents_.to_vector_f32());
}

TEST_F(ShardedTensorTest, ReshardMovesOnlyFramesThatChangeDevice) {
  struct Move {
    DeviceGroup from, to;
  };
  const std::vector<Move> moves = {
      {{{0, 1}}, {{2, 3}}},        // disjoint: everything moves
      {{{0, 1}}, {{0, 1, 2, 3}}},  // grow: 0 keeps frames 0-1, 1 keeps none of 2
      {{{0, 1, 2, 3}}, {{0, 1}}},  // shrink
      {{{0}}, {{0, 2}}},
      {{{0, 1}}, {{1, 0}}},        // same devices, swapped order
      {{{1, 2, 3}}, {{1, 2, 3}}},  // unchanged: nothing moves
      {{{3, 1}}, {{1, 2, 3}}},
  };
  for (const Move& m : moves) {
    const ShardedTensor before = sharded_latents(m.from);
    ReshardStats stats;
    const ShardedTensor after = reshard(devices_.fabric(), before, m.to, &stats);
    const std::int64_t want = must_move(m.from, m.to, 5, kFrameBytes);
    EXPECT_EQ(stats.bytes_moved, want) << m.from.size() << " -> " << m.to.size();
    EXPECT_EQ(stats.bytes_moved + stats.bytes_kept, 5 * kFrameBytes);
    ASSERT_EQ(after.group.ranks, m.to.ranks);
    for (std::size_t i = 0; i < after.shards.size(); ++i)
      EXPECT_EQ(after.shards[i].device(), devices_[m.to.ranks[i]].device());
    EXPECT_EQ(whole(after).to_vector_f32(), latents_.to_vector_f32());
  }
  // The expectation is not trivially zero or everything.
  EXPECT_EQ(must_move({{0, 1}}, {{0, 1, 2, 3}}, 5, kFrameBytes), 3 * kFrameBytes);
  EXPECT_EQ(must_move({{1, 2, 3}}, {{1, 2, 3}}, 5, kFrameBytes), 0);
}

// Three frames on four members: the last member holds none, before and after.
TEST_F(ShardedTensorTest, MoreMembersThanFrames) {
  const Tensor small = contiguous(*host_, latents_.narrow(2, 0, 3));
  const DeviceGroup all{{0, 1, 2, 3}}, other{{3, 2, 1, 0}};
  const ShardedTensor state = shard(devices_.fabric(), all, transfer(*host_, small, devices_[0]), 0, 2);
  EXPECT_EQ(state.shards[3].size(2), 0);
  ReshardStats stats;
  const ShardedTensor after = reshard(devices_.fabric(), state, other, &stats);
  EXPECT_EQ(after.shards[3].size(2), 0);
  EXPECT_EQ(stats.bytes_moved, 3 * kFrameBytes);  // frame 1 moves from rank 1 to 2, etc.
  EXPECT_EQ(stats.bytes_moved, must_move(all, other, 3, kFrameBytes));
  EXPECT_EQ(whole(after).to_vector_f32(), small.to_vector_f32());
}

TEST_F(ShardedTensorTest, UnchangedShardIsKeptWithoutACopy) {
  const ShardedTensor before = sharded_latents({{0, 1}});
  const ShardedTensor after = reshard(devices_.fabric(), before, {{0, 2}});
  EXPECT_EQ(after.shards[0].raw_data(), before.shards[0].raw_data());
  EXPECT_NE(after.shards[1].raw_data(), before.shards[1].raw_data());
}

TEST_F(ShardedTensorTest, RejectsInconsistentState) {
  ShardedTensor state = sharded_latents({{0, 1}});
  EXPECT_THROW(reshard(devices_.fabric(), state, {{0, 0}}), InvalidArgument);
  ShardedTensor short_state = state;
  short_state.shards.pop_back();
  EXPECT_THROW(reshard(devices_.fabric(), short_state, {{2}}), InvalidArgument);
  ShardedTensor misplaced = state;
  misplaced.group = {{2, 1}};  // shard 0 lives on rank 0, not 2
  EXPECT_THROW(reshard(devices_.fabric(), misplaced, {{2}}), InvalidArgument);
}

}  // namespace
}  // namespace ditserve
