#include "runtime/group_step.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "kernels/copy.h"
#include "pipeline/pipeline.h"
#include "support/random.h"

// The runtime's step on a device group against GenerationState::step on one device: the
// tiny pipeline's request, stepped on groups of 1, 2, 3 and 4 CPU devices that change
// between steps, gives the one-device latents.

namespace ditserve::runtime {
namespace {

TEST(GroupStep, ChangingGroupsGiveTheOneDeviceLatents) {
  constexpr int kRanks = 4;
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::unique_ptr<Pipeline>> pipelines;
  std::vector<Backend*> devices;
  for (int r = 0; r < kRanks; ++r) {
    backends.push_back(make_backend(Device::cpu(r)));
    devices.push_back(backends.back().get());
    pipelines.push_back(std::make_unique<Pipeline>(find_model("tiny"), *backends.back(), std::nullopt));
  }
  Fabric fabric(devices);
  GenerateRequest request;
  request.prompt = "a lighthouse at dusk";
  request.frames = 5;
  request.height = 32;
  request.width = 48;
  request.steps = 4;
  request.seed = 3;

  GenerationState want = pipelines[0]->start(request, pipelines[0]->encode(request.prompt));
  GenerationState got = want;
  while (!want.done()) want.step(*backends[0], pipelines[0]->transformer());

  const std::vector<DeviceGroup> schedule = {{{0, 1}}, {{2, 0, 3, 1}}, {{3}}, {{1, 2, 0}}};
  int holder = 0;
  for (const DeviceGroup& group : schedule) {
    const int leader = group.ranks[0];
    if (leader != holder) got.move_to(*backends[holder], *backends[leader]);
    holder = leader;
    std::vector<STDiT3*> members;
    for (int r : group.ranks) members.push_back(dynamic_cast<STDiT3*>(&pipelines[r]->transformer()));
    group_step(fabric, group, members, got);
  }
  ASSERT_TRUE(got.done());
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const Tensor a = transfer(*backends[holder], got.latents(), *host);
  const Tensor b = transfer(*backends[0], want.latents(), *host);
  EXPECT_LE(ditserve::testing::relative_error(a, b), 1e-5);
  GenerationState start = pipelines[0]->start(request, pipelines[0]->encode(request.prompt));
  EXPECT_GT(ditserve::testing::relative_error(b, start.latents()), 0.05);  // the steps moved z
}

}  // namespace
}  // namespace ditserve::runtime
