#include "comm/fabric.h"

#include <gtest/gtest.h>

#include "comm_testing.h"

namespace ditserve {
namespace {

using testing::CpuDevices;
using testing_comm::at;
using testing_comm::expect_error;
using testing_comm::filled;

TEST(EvenSplit, FirstPartsTakeTheRemainder) {
  EXPECT_EQ(even_split(10, 3), (std::vector<std::int64_t>{4, 3, 3}));
  EXPECT_EQ(even_split(8, 4), (std::vector<std::int64_t>{2, 2, 2, 2}));
  EXPECT_EQ(even_split(2, 4), (std::vector<std::int64_t>{1, 1, 0, 0}));
  EXPECT_EQ(even_split(0, 2), (std::vector<std::int64_t>{0, 0}));
  expect_error([] { even_split(4, 0); }, {"even_split"});
  expect_error([] { even_split(-1, 2); }, {"even_split"});
}

TEST(DeviceGroup, Validate) {
  CpuDevices f(4);
  EXPECT_NO_THROW((DeviceGroup{{3, 1}}.validate(f.fabric())));
  expect_error([&] { DeviceGroup{}.validate(f.fabric()); }, {"DeviceGroup", "no ranks"});
  expect_error([&] { DeviceGroup{{0, 2, 0}}.validate(f.fabric()); }, {"DeviceGroup", "repeats"});
  expect_error([&] { DeviceGroup{{1, 4}}.validate(f.fabric()); }, {"DeviceGroup", "rank 4"});
  expect_error([&] { DeviceGroup{{-1}}.validate(f.fabric()); }, {"DeviceGroup", "rank -1"});
}

TEST(Fabric, RejectsDuplicateDevicesAndBadRanks) {
  CpuDevices f(2);
  expect_error([&] { Fabric{{&f[0], &f[0]}}; }, {"Fabric", "twice"});
  expect_error([&] { f.fabric().device(2); }, {"Fabric", "rank 2"});
  EXPECT_EQ(f.fabric().size(), 2);
  EXPECT_EQ(f.fabric().device(1).device(), Device::cpu(1));
}

TEST(Fabric, CopyBetweenRanksIntoStridedViews) {
  CpuDevices f(3);
  const Tensor src = filled(f.fabric(), 0, {2, 3}, 1.0f);
  Tensor dst = f.fabric().device(2).empty({4, 3}, DType::f32);
  for (std::int64_t k = 0; k < dst.numel(); ++k) dst.data<float>()[k] = -1.0f;
  // Strided destination (transposed view of rows 1..2) from a strided source.
  const Tensor view = dst.narrow(0, 1, 2).transpose(0, 1);
  f.fabric().copy(0, src.transpose(0, 1), 2, view);
  for (std::int64_t r = 0; r < 2; ++r) {
    for (std::int64_t c = 0; c < 3; ++c) EXPECT_EQ(at(dst, {r + 1, c}), at(src, {r, c}));
  }
  EXPECT_EQ(at(dst, {0, 0}), -1.0f);
  EXPECT_EQ(at(dst, {3, 2}), -1.0f);
  // Same rank: a local copy.
  const Tensor local = f.fabric().device(0).empty({2, 3}, DType::f32);
  f.fabric().copy(0, src, 0, local);
  EXPECT_EQ(at(local, {1, 2}), 6.0f);
}

TEST(Fabric, CopyChecksDevicesAndShapes) {
  CpuDevices f(2);
  const Tensor a = filled(f.fabric(), 0, {2}, 0.0f);
  const Tensor b = f.fabric().device(1).empty({2}, DType::f32);
  const Tensor c = f.fabric().device(1).empty({3}, DType::f32);
  expect_error([&] { f.fabric().copy(1, a, 1, b); }, {"Fabric::copy", "src"});
  expect_error([&] { f.fabric().copy(0, a, 0, b); }, {"Fabric::copy", "dst"});
  expect_error([&] { f.fabric().copy(0, a, 1, c); }, {"Fabric::copy", "shape"});
}

}  // namespace
}  // namespace ditserve
