#include "runtime/group_decode.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kernels/copy.h"
#include "support/cpu_devices.h"
#include "support/random.h"
#include "tensor/error.h"

// The runtime's VAE decode on a device group against Pipeline::decode on one device: both
// tiny VAEs (Open-Sora's, Wan's), on groups of 1 to 4 CPU devices whose leader is not
// always rank 0, give the one-device video up to rounding, whether the members use their
// own pipelines' VAEs or copies of the leader's; the group's limits.

namespace ditserve::runtime {
namespace {

using ::testing::HasSubstr;

constexpr int kRanks = 4;

double max_abs_difference(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector_f32(), y = b.to_vector_f32();
  if (x.size() != y.size()) return INFINITY;
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(x[i]) - y[i]));
  return worst;
}

void expect_groups_give_the_one_device_video(const std::string& model) {
  const testing::CpuDevices devices(kRanks);
  Fabric& fabric = devices.fabric();
  std::vector<std::unique_ptr<Pipeline>> pipelines;
  for (int r = 0; r < kRanks; ++r) {
    pipelines.push_back(std::make_unique<Pipeline>(find_model(model), devices[r], std::nullopt));
  }
  GenerateRequest request = default_request(find_model(model));
  request.prompt = "a kite over a windy beach";
  request.frames = 5;  // 2 latent frames of 4 x 6 latents
  request.height = 32;
  request.width = 48;
  request.steps = 2;
  request.seed = 5;
  GenerationState finished = pipelines[0]->start(request, pipelines[0]->encode(request.prompt));
  while (!finished.done()) finished.step(devices[0], pipelines[0]->transformer());
  const Tensor want = pipelines[0]->decode(finished);
  ASSERT_EQ(want.shape(), (Shape{1, 3, 5, 32, 48}));

  EXPECT_EQ(max_decode_dop(pipelines[0]->vae(), 4, kRanks), 4);
  EXPECT_EQ(max_decode_dop(pipelines[0]->vae(), 2, kRanks), 2);  // a band per latent row at most
  EXPECT_EQ(max_decode_dop(pipelines[0]->vae(), 8, 3), 3);
  for (const DeviceGroup& group : {DeviceGroup{{0}}, DeviceGroup{{2}}, DeviceGroup{{1, 0}},
                                   DeviceGroup{{3, 1, 2}}, DeviceGroup{{2, 0, 3, 1}}}) {
    const int leader = group.ranks[0];
    GenerationState state = finished;
    if (leader != 0) state.move_to(devices[0], devices[leader]);
    const Tensor got = group_decode(fabric, group, *pipelines[static_cast<std::size_t>(leader)], state);
    ASSERT_EQ(got.shape(), want.shape()) << model << " on " << group.size();
    // Every member's own pipeline (as the engine passes them), or only some: the same
    // video as with the leader's parameters copied to the members, bit for bit.
    std::vector<Pipeline*> members, some;
    for (const int r : group.ranks) {
      members.push_back(pipelines[static_cast<std::size_t>(r)].get());
      some.push_back(some.empty() || r % 2 == 0 ? members.back() : nullptr);
    }
    EXPECT_EQ(max_abs_difference(group_decode(fabric, group, members, state), got), 0)
        << model << " led by rank " << leader << " on " << group.size() << " devices, own VAEs";
    EXPECT_EQ(max_abs_difference(group_decode(fabric, group, some, state), got), 0)
        << model << " led by rank " << leader << " on " << group.size() << " devices, some own";
    EXPECT_TRUE(got.device().is_cpu());
    // Rounding only: the members sum GroupNorm statistics in another order.
    EXPECT_LE(max_abs_difference(got, want), 1e-4) << model << " led by rank " << leader << " on "
                                                   << group.size() << " devices";
    if (group.size() == 1) {
      EXPECT_EQ(max_abs_difference(got, want), 0) << model << " on one device";
    }
  }
}

TEST(GroupDecode, OpenSoraGroupsGiveTheOneDeviceVideo) { expect_groups_give_the_one_device_video("tiny"); }

TEST(GroupDecode, WanGroupsGiveTheOneDeviceVideo) { expect_groups_give_the_one_device_video("tiny-wan"); }

TEST(GroupDecode, RefusesAWrongLeaderAndTooFewRows) {
  const testing::CpuDevices devices(kRanks);
  Fabric& fabric = devices.fabric();
  Pipeline pipeline(find_model("tiny"), devices[0], std::nullopt);
  GenerateRequest request;
  request.prompt = "a kite";
  request.frames = 1;
  request.height = 16;  // 2 latent rows
  request.width = 16;
  request.steps = 1;
  GenerationState state = pipeline.start(request, pipeline.encode(request.prompt));
  state.step(devices[0], pipeline.transformer());
  try {
    group_decode(fabric, DeviceGroup{{1, 0}}, pipeline, state);
    ADD_FAILURE() << "a group led by another device than the pipeline's was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("leader"));
  }
  try {
    group_decode(fabric, DeviceGroup{{0, 1, 2}}, pipeline, state);
    ADD_FAILURE() << "3 bands of 2 latent rows were accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("rows"));
  }
  EXPECT_EQ(group_decode(fabric, DeviceGroup{{0, 1}}, pipeline, state).shape(), (Shape{1, 3, 1, 16, 16}));

  // Member pipelines: one per member, the leader's first, each on its member's device.
  Pipeline other(find_model("tiny"), devices[1], std::nullopt);
  const auto refused = [&](const DeviceGroup& group, const std::vector<Pipeline*>& members,
                           const char* why) {
    try {
      group_decode(fabric, group, members, state);
      ADD_FAILURE() << why << " was accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr("group_decode")) << why;
    }
  };
  refused(DeviceGroup{{0, 1}}, {&pipeline}, "one pipeline for two members");
  refused(DeviceGroup{{0, 1}}, {nullptr, &other}, "no leader's pipeline");
  refused(DeviceGroup{{0, 1, 2}}, {&pipeline, nullptr, &other}, "a pipeline on another member's device");
  EXPECT_EQ(group_decode(fabric, DeviceGroup{{0, 1}}, {&pipeline, &other}, state).shape(),
            (Shape{1, 3, 1, 16, 16}));
}

}  // namespace
}  // namespace ditserve::runtime
