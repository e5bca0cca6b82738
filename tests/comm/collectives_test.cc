#include "comm/collectives.h"

#include <gtest/gtest.h>

#include <numeric>

#include "comm_testing.h"
#include "kernels/copy.h"

namespace ditserve {
namespace {

using testing::CpuDevices;
using testing_comm::expect_all_to_all;
using testing_comm::expect_concat;
using testing_comm::expect_on_members;
using testing_comm::member_inputs;

DeviceGroup first_ranks(int n) {
  DeviceGroup g;
  g.ranks.resize(static_cast<std::size_t>(n));
  std::iota(g.ranks.begin(), g.ranks.end(), 0);
  return g;
}

// Frames (dim 0) sharded over members; switch to positions (dim 1) sharded.
void run_all_to_all(Fabric& fabric, const DeviceGroup& group, std::int64_t frames,
                    std::int64_t positions) {
  const int n = group.size();
  const auto inputs = member_inputs(fabric, group, {0, positions, 3}, 0, even_split(frames, n));
  const auto sizes = even_split(positions, n);
  const auto out = all_to_all(fabric, group, inputs, 1, sizes, 0);
  expect_all_to_all(fabric, group, inputs, 1, sizes, 0, out);
  for (int j = 0; j < n; ++j) {
    EXPECT_EQ(out[static_cast<std::size_t>(j)].shape(),
              (Shape{frames, sizes[static_cast<std::size_t>(j)], 3}));
  }
  // And back: positions to frames gives the original shards.
  const auto back = all_to_all(fabric, group, out, 0, even_split(frames, n), 1);
  for (int i = 0; i < n; ++i) {
    expect_concat(back[static_cast<std::size_t>(i)], {inputs[static_cast<std::size_t>(i)]}, 0);
  }
}

class GroupSize : public ::testing::TestWithParam<int> {};

TEST_P(GroupSize, AllToAllEvenAndUneven) {
  const int n = GetParam();
  CpuDevices f(n);
  run_all_to_all(f.fabric(), first_ranks(n), 2 * n, 3 * n);   // even
  run_all_to_all(f.fabric(), first_ranks(n), 2 * n + 1, 3 * n + n / 2 + 1);  // uneven
}

TEST_P(GroupSize, AllToAllSameSplitAndConcatDimAndNegativeDims) {
  const int n = GetParam();
  CpuDevices f(n);
  const DeviceGroup g = first_ranks(n);
  // Split and concatenate along the same dim: inputs of equal length there.
  const auto equal = member_inputs(f.fabric(), g, {2, 0}, 1, std::vector<std::int64_t>(n, 2 * n + 1));
  const auto sizes = even_split(2 * n + 1, n);
  const auto out = all_to_all(f.fabric(), g, equal, -1, sizes, -1);
  expect_all_to_all(f.fabric(), g, equal, 1, sizes, 1, out);
}

TEST_P(GroupSize, AllGatherEvenAndUneven) {
  const int n = GetParam();
  CpuDevices f(n);
  const DeviceGroup g = first_ranks(n);
  for (const std::int64_t total : {std::int64_t{2} * n, std::int64_t{2} * n + 1}) {
    const auto inputs = member_inputs(f.fabric(), g, {3, 0, 2}, 1, even_split(total, n));
    const auto out = all_gather(f.fabric(), g, inputs, 1);
    expect_on_members(f.fabric(), g, out);
    for (const Tensor& o : out) expect_concat(o, inputs, 1);
  }
}

TEST_P(GroupSize, GatherToEveryRoot) {
  const int n = GetParam();
  CpuDevices f(n);
  const DeviceGroup g = first_ranks(n);
  const auto inputs = member_inputs(f.fabric(), g, {0, 4}, 0, even_split(3 * n + 1, n));
  for (int root = 0; root < n; ++root) {
    const Tensor out = gather(f.fabric(), g, inputs, 0, root);
    EXPECT_EQ(out.device(), Device::cpu(root));
    expect_concat(out, inputs, 0);
  }
}

TEST_P(GroupSize, ScatterFromEveryRoot) {
  const int n = GetParam();
  CpuDevices f(n);
  const DeviceGroup g = first_ranks(n);
  for (int root = 0; root < n; ++root) {
    for (const std::int64_t total : {std::int64_t{2} * n, std::int64_t{2} * n + 1}) {
      const Tensor input = testing_comm::filled(f.fabric(), root, {2, total, 3}, 7.0f);
      const auto sizes = even_split(total, n);
      const auto out = scatter(f.fabric(), g, input, root, 1, sizes);
      expect_on_members(f.fabric(), g, out);
      // Concatenating the scattered pieces gives back the input.
      expect_concat(input, out, 1);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Comm, GroupSize, ::testing::Values(1, 2, 3, 4, 8));

TEST(Collectives, ReorderedGroupGivesReorderedResult) {
  CpuDevices f(4);
  const DeviceGroup ordered{{0, 1, 2, 3}};
  const DeviceGroup shuffled{{2, 0, 3, 1}};
  // The same tensor per rank in both runs.
  std::vector<Tensor> by_rank;
  for (int r = 0; r < 4; ++r) by_rank.push_back(testing_comm::filled(f.fabric(), r, {r + 1, 2}, 100.0f * r));
  std::vector<Tensor> in_shuffled;
  for (int r : shuffled.ranks) in_shuffled.push_back(by_rank[static_cast<std::size_t>(r)]);
  const auto a = all_gather(f.fabric(), ordered, by_rank, 0);
  const auto b = all_gather(f.fabric(), shuffled, in_shuffled, 0);
  expect_on_members(f.fabric(), shuffled, b);
  EXPECT_EQ(b[0].device(), Device::cpu(2));
  expect_concat(b[0], in_shuffled, 0);
  // Rank 2's first row differs between the two orders: member order decides.
  EXPECT_EQ(testing_comm::at(a[2], {0, 0}), 0.0f);
  EXPECT_EQ(testing_comm::at(b[0], {0, 0}), 200.0f);

  const auto sizes = std::vector<std::int64_t>{1, 0, 1, 0};
  std::vector<Tensor> two_cols;
  for (int r : shuffled.ranks) two_cols.push_back(testing_comm::filled(f.fabric(), r, {1, 2}, 10.0f * r));
  const auto c = all_to_all(f.fabric(), shuffled, two_cols, 1, sizes, 0);
  expect_all_to_all(f.fabric(), shuffled, two_cols, 1, sizes, 0, c);
  EXPECT_EQ(testing_comm::at(c[0], {0, 0}), 20.0f);  // member 0 = rank 2 comes first
  EXPECT_EQ(testing_comm::at(c[0], {1, 0}), 0.0f);
}

TEST(Collectives, OverlappingGroupsSequentialAndInterleaved) {
  CpuDevices f(8);
  const DeviceGroup a{{0, 1, 2, 3}};
  const DeviceGroup b{{3, 2, 4, 5, 6}};
  const DeviceGroup c{{6, 7, 0}};
  const auto in_a = member_inputs(f.fabric(), a, {0, 5}, 0, {1, 2, 0, 3});
  const auto in_b = member_inputs(f.fabric(), b, {2, 0}, 1, {1, 1, 2, 3, 1});
  // Sequential: a's all_to_all, then b's on rank-overlapping members.
  const auto out_a = all_to_all(f.fabric(), a, in_a, 1, even_split(5, 4), 0);
  expect_all_to_all(f.fabric(), a, in_a, 1, even_split(5, 4), 0, out_a);
  const auto out_b = all_gather(f.fabric(), b, in_b, 1);
  for (const Tensor& o : out_b) expect_concat(o, in_b, 1);
  // Interleaved: a group's outputs feed another group's collective, and a third group
  // runs between them; earlier inputs and outputs stay untouched.
  const Tensor a_before = out_a[3];
  const float a_first = testing_comm::at(a_before, {0, 0});
  const auto in_c = std::vector<Tensor>{
      testing_comm::filled(f.fabric(), 6, {1, 2}, 1.0f),
      testing_comm::filled(f.fabric(), 7, {2, 2}, 2.0f), out_a[0].narrow(1, 0, 1).expand({6, 2})};
  const auto g_c = all_gather(f.fabric(), c, {in_c[0], in_c[1], contiguous(f.fabric().device(0), in_c[2])}, 0);
  const auto s_b = scatter(f.fabric(), b, out_b[0], 0, 1, {2, 2, 2, 2, 0});
  const Tensor g_a = gather(f.fabric(), a, out_a, 1, 3);
  for (const Tensor& o : g_c) EXPECT_EQ(o.shape(), (Shape{9, 2}));
  expect_concat(g_c[2], {in_c[0], in_c[1], in_c[2]}, 0);
  EXPECT_EQ(g_c[2].device(), Device::cpu(0));
  expect_on_members(f.fabric(), b, s_b);
  expect_concat(out_b[0], s_b, 1);
  EXPECT_EQ(g_a.device(), Device::cpu(3));
  expect_concat(g_a, out_a, 1);
  EXPECT_EQ(testing_comm::at(a_before, {0, 0}), a_first);
  expect_all_to_all(f.fabric(), a, in_a, 1, even_split(5, 4), 0, out_a);
  for (const Tensor& o : out_b) expect_concat(o, in_b, 1);
}

TEST(Collectives, SubsetOfFabric) {
  CpuDevices f(8);
  const DeviceGroup g{{5, 7}};
  const auto inputs = member_inputs(f.fabric(), g, {0, 3}, 0, {3, 2});
  const auto out = all_to_all(f.fabric(), g, inputs, 1, {2, 1}, 0);
  expect_all_to_all(f.fabric(), g, inputs, 1, {2, 1}, 0, out);
  EXPECT_EQ(out[0].device(), Device::cpu(5));
  EXPECT_EQ(out[1].device(), Device::cpu(7));
  const Tensor gathered = gather(f.fabric(), g, inputs, 0, 1);
  EXPECT_EQ(gathered.device(), Device::cpu(7));
  expect_concat(gathered, inputs, 0);
}

TEST(Collectives, EmptyShards) {
  CpuDevices f(3);
  const DeviceGroup g{{0, 1, 2}};
  const auto inputs = member_inputs(f.fabric(), g, {0, 5, 2}, 0, {2, 0, 3});
  const std::vector<std::int64_t> sizes{0, 4, 1};
  const auto out = all_to_all(f.fabric(), g, inputs, 1, sizes, 0);
  expect_all_to_all(f.fabric(), g, inputs, 1, sizes, 0, out);
  EXPECT_EQ(out[0].shape(), (Shape{5, 0, 2}));
  const auto ag = all_gather(f.fabric(), g, inputs, 0);
  for (const Tensor& o : ag) expect_concat(o, inputs, 0);
  const auto sc = scatter(f.fabric(), g, ag[1], 1, 0, {0, 5, 0});
  EXPECT_EQ(sc[0].shape(), (Shape{0, 5, 2}));
  expect_concat(ag[1], sc, 0);
}

TEST(Collectives, StridedInputs) {
  CpuDevices f(3);
  const DeviceGroup g{{1, 2, 0}};
  std::vector<Tensor> inputs;
  for (int i = 0; i < 3; ++i) {
    // Transposed and narrowed views: non-contiguous.
    const Tensor big = testing_comm::filled(f.fabric(), g.ranks[static_cast<std::size_t>(i)],
                                            {4, 2 + i, 6}, 1000.0f * i);
    inputs.push_back(big.transpose(0, 1).narrow(2, 1, 4));
    ASSERT_FALSE(inputs.back().is_contiguous());
  }
  const std::vector<std::int64_t> sizes{1, 2, 1};
  const auto out = all_to_all(f.fabric(), g, inputs, 1, sizes, 0);
  expect_all_to_all(f.fabric(), g, inputs, 1, sizes, 0, out);
  const auto ag = all_gather(f.fabric(), g, inputs, 0);
  for (const Tensor& o : ag) expect_concat(o, inputs, 0);
  const auto sc = scatter(f.fabric(), g, inputs[2], 2, 2, {2, 1, 1});
  expect_concat(inputs[2], sc, 2);
}

}  // namespace
}  // namespace ditserve
