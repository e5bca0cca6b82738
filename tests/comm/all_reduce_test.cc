#include <gtest/gtest.h>

#include <numeric>

#include "comm/collectives.h"
#include "comm_testing.h"
#include "kernels/copy.h"

// all_reduce and send_recv over groups of CPU devices.

namespace ditserve {
namespace {

using testing::CpuDevices;
using testing_comm::expect_error;
using testing_comm::expect_on_members;

// Member i's input: element k is (i + 1) * 0.5 + k.
std::vector<Tensor> ramp_inputs(Fabric& fabric, const DeviceGroup& group, const Shape& shape) {
  std::vector<Tensor> inputs;
  for (int i = 0; i < group.size(); ++i) {
    inputs.push_back(testing_comm::filled(fabric, group.ranks[static_cast<std::size_t>(i)], shape,
                                          0.5f * static_cast<float>(i + 1)));
  }
  return inputs;
}

class AllReduceSize : public ::testing::TestWithParam<int> {};

TEST_P(AllReduceSize, EveryMemberGetsTheSum) {
  const int n = GetParam();
  CpuDevices f(8);
  DeviceGroup g;
  for (int i = 0; i < n; ++i) g.ranks.push_back((3 * i + 5) % 8);  // scattered ranks
  const auto inputs = ramp_inputs(f.fabric(), g, {3, 5});
  const auto out = all_reduce(f.fabric(), g, inputs);
  expect_on_members(f.fabric(), g, out);
  const float member_part = 0.5f * static_cast<float>(n * (n + 1) / 2);
  for (const Tensor& o : out) {
    ASSERT_EQ(o.shape(), (Shape{3, 5}));
    const std::vector<float> v = o.to_vector_f32();
    for (std::size_t k = 0; k < v.size(); ++k) {
      EXPECT_FLOAT_EQ(v[k], member_part + static_cast<float>(n) * static_cast<float>(k));
    }
  }
  // Inputs are left as they were.
  EXPECT_EQ(inputs[0].to_vector_f32()[1], 1.5f);
}

INSTANTIATE_TEST_SUITE_P(Comm, AllReduceSize, ::testing::Values(1, 2, 3, 4, 8));

// bf16 inputs are summed in f32 and rounded once: 256 + 1 + 1 + 1 = 259 rounds to 260,
// where summing in bf16 would round every 257 back to 256.
TEST(AllReduce, Bf16AccumulatesInF32) {
  CpuDevices f(4);
  const DeviceGroup g{{2, 0, 3, 1}};
  std::vector<Tensor> inputs;
  for (int i = 0; i < 4; ++i) {
    Backend& be = f.fabric().device(g.ranks[static_cast<std::size_t>(i)]);
    const std::unique_ptr<Backend> host = make_backend(Device::cpu());
    const Tensor v = Tensor::from_vector({i == 0 ? 256.0f : 1.0f, 0.25f}, {2});
    inputs.push_back(transfer(*host, cast(*host, v, DType::bf16), be));
  }
  const auto out = all_reduce(f.fabric(), g, inputs);
  for (const Tensor& o : out) {
    EXPECT_EQ(o.dtype(), DType::bf16);
    EXPECT_EQ(o.to_vector_f32(), (std::vector<float>{260.0f, 1.0f}));
  }
}

TEST(AllReduce, StridedInputsAndErrors) {
  CpuDevices f(3);
  const DeviceGroup g{{0, 1, 2}};
  std::vector<Tensor> inputs;
  for (int r = 0; r < 3; ++r) {
    inputs.push_back(testing_comm::filled(f.fabric(), r, {4, 2}, 10.0f * r).transpose(0, 1));
  }
  const auto out = all_reduce(f.fabric(), g, inputs);
  EXPECT_EQ(out[2].shape(), (Shape{2, 4}));
  EXPECT_FLOAT_EQ(testing_comm::at(out[2], {1, 3}), 30.0f + 3 * 7.0f);  // element (3, 1)

  std::vector<Tensor> mismatched = inputs;
  mismatched[1] = testing_comm::filled(f.fabric(), 1, {2, 5}, 0.0f);
  expect_error([&] { all_reduce(f.fabric(), g, mismatched); }, {"all_reduce", "inputs[1]"});
  std::vector<Tensor> misplaced = inputs;
  misplaced[2] = inputs[0];
  expect_error([&] { all_reduce(f.fabric(), g, misplaced); }, {"all_reduce", "member 2"});
  std::vector<Tensor> ints;
  for (int r = 0; r < 3; ++r) ints.push_back(f.fabric().device(r).empty({2}, DType::i32));
  expect_error([&] { all_reduce(f.fabric(), g, ints); }, {"all_reduce", "f32"});
}

TEST(SendRecv, CopiesBetweenMembers) {
  CpuDevices f(4);
  const DeviceGroup g{{3, 1, 2}};
  const Tensor src = testing_comm::filled(f.fabric(), 1, {3, 4}, 5.0f).narrow(1, 1, 2);
  const Tensor got = send_recv(f.fabric(), g, src, 1, 2);
  EXPECT_EQ(got.device(), Device::cpu(2));
  EXPECT_TRUE(got.is_contiguous());
  EXPECT_EQ(got.to_vector_f32(), contiguous(f.fabric().device(1), src).to_vector_f32());
  const Tensor same = send_recv(f.fabric(), g, src, 1, 1);
  EXPECT_EQ(same.device(), Device::cpu(1));
  EXPECT_EQ(same.to_vector_f32(), got.to_vector_f32());
  expect_error([&] { send_recv(f.fabric(), g, src, 0, 2); }, {"send_recv", "member 0"});
  expect_error([&] { send_recv(f.fabric(), g, src, 1, 3); }, {"send_recv", "to 3"});
}

}  // namespace
}  // namespace ditserve
