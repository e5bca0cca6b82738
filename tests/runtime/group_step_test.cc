#include "runtime/group_step.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/copy.h"
#include "models/graphed_transformer.h"
#include "pipeline/pipeline.h"
#include "support/cpu_devices.h"
#include "support/random.h"
#include "tensor/error.h"

// The runtime's step on a device group against GenerationState::step on one device: the
// tiny pipeline's request (STDiT3, frame-position parallel) and tiny-wan's (Ulysses, with
// UniPC's history), stepped on groups of 1 to 4 CPU devices that change between steps,
// give the one-device latents. A state moved between devices keeps its UniPC history. On
// an even group the guidance branches run apart: the prompt's on the first half, the null
// caption's on the second.

namespace ditserve::runtime {
namespace {

using ::testing::HasSubstr;

constexpr int kRanks = 4;

// One pipeline of `model` per CPU device, and the fabric over them.
class Devices {
 public:
  explicit Devices(const std::string& model) {
    for (int r = 0; r < kRanks; ++r) {
      pipelines_.push_back(std::make_unique<Pipeline>(find_model(model), devices_[r], std::nullopt));
    }
  }

  Backend& backend(int r) { return devices_[r]; }
  Pipeline& pipeline(int r) { return *pipelines_[static_cast<std::size_t>(r)]; }
  Fabric& fabric() { return devices_.fabric(); }

  GenerationState start(const GenerateRequest& request) {
    return pipeline(0).start(request, pipeline(0).encode(request.prompt));
  }

  // The request's latents after every step on one device, on the host.
  Tensor one_device(const GenerateRequest& request) {
    GenerationState state = start(request);
    while (!state.done()) state.step(backend(0), pipeline(0).transformer());
    return host(0, state.latents());
  }

  // The request's latents after one step on each group of `schedule` (the state moving
  // to each group's first member as the engine moves it), on the host.
  Tensor on_groups(const GenerateRequest& request, const std::vector<DeviceGroup>& schedule) {
    GenerationState state = start(request);
    int holder = 0;
    for (const DeviceGroup& group : schedule) {
      const int leader = group.ranks[0];
      if (leader != holder) state.move_to(backend(holder), backend(leader));
      holder = leader;
      std::vector<DiffusionTransformer*> members;
      for (int r : group.ranks) members.push_back(&pipeline(r).transformer());
      group_step(fabric(), group, members, state);
    }
    EXPECT_TRUE(state.done());
    return host(holder, state.latents());
  }

  Tensor host(int rank, const Tensor& t) {
    const std::unique_ptr<Backend> cpu = make_backend(Device::cpu());
    return transfer(backend(rank), t, *cpu);
  }

 private:
  testing::CpuDevices devices_{kRanks};
  std::vector<std::unique_ptr<Pipeline>> pipelines_;
};

GenerateRequest tiny_request(int steps) {
  GenerateRequest r;
  r.prompt = "a lighthouse at dusk";
  r.frames = 5;
  r.height = 32;
  r.width = 48;
  r.steps = steps;
  r.seed = 3;
  return r;
}

TEST(GroupStep, ChangingGroupsGiveTheOneDeviceLatents) {
  Devices d("tiny");
  const GenerateRequest request = tiny_request(4);

  const Tensor want = d.one_device(request);
  const Tensor got = d.on_groups(request, {{{0, 1}}, {{2, 0, 3, 1}}, {{3}}, {{1, 2, 0}}});
  EXPECT_LE(ditserve::testing::relative_error(got, want), 1e-5);
  const Tensor start = d.start(request).latents();
  EXPECT_GT(ditserve::testing::relative_error(want, start), 0.05);  // the steps moved z
}

TEST(GroupStep, GuidanceBranchesRunOnTheTwoHalvesOfAnEvenGroup) {
  EXPECT_FALSE(uses_guidance_parallel(DeviceGroup{{0}}));
  EXPECT_TRUE(uses_guidance_parallel(DeviceGroup{{1, 0}}));
  EXPECT_FALSE(uses_guidance_parallel(DeviceGroup{{0, 2, 1}}));
  EXPECT_TRUE(uses_guidance_parallel(DeviceGroup{{3, 1, 0, 2}}));

  // Member 1 holds a replica with other weights, so the step shows which member computed
  // which branch: the prompt's prediction must be member 0's model's alone, the null
  // caption's member 1's alone (frame/position parallel over both would mix the two).
  testing::CpuDevices devices(2);
  Pipeline first(find_model("tiny"), devices[0], std::nullopt);
  ModelSpec other = find_model("tiny");
  other.builtin_seed = *other.builtin_seed + 1;
  Pipeline second(other, devices[1], std::nullopt);
  const GenerateRequest request = tiny_request(2);
  const GenerationState start = first.start(request, first.encode(request.prompt));

  GenerationState want = start;
  const DenoiseInputs in = want.next_inputs(devices[0]);
  const Tensor cond = first.transformer().forward(in).narrow(0, 0, 1);
  const Tensor uncond =
      transfer(devices[1], second.transformer().forward(replicate_inputs(devices.fabric(), DeviceGroup{{0, 1}}, in)[1]).narrow(0, 1, 1), devices[0]);
  want.advance(devices[0], concat(devices[0], {cond, uncond}, 0));

  GenerationState got = start;
  group_step(devices.fabric(), DeviceGroup{{0, 1}},
             {&first.transformer(), &second.transformer()}, got);
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const auto on_host = [&](const GenerationState& s) { return transfer(devices[0], s.latents(), *host); };
  EXPECT_LE(ditserve::testing::relative_error(on_host(got), on_host(want)), 1e-5);

  GenerationState one_model = start;  // both branches by member 0's model
  one_model.step(devices[0], first.transformer());
  EXPECT_GT(ditserve::testing::relative_error(on_host(one_model), on_host(want)), 1e-3);
}

GenerateRequest wan_request(int steps) {
  GenerateRequest r = default_request(find_model("tiny-wan"));  // unipc
  r.prompt = "a heron wading at dawn";
  r.frames = 5;  // 2 latent frames of 4 x 6 latents: 2 x 2 x 3 = 12 tokens
  r.height = 32;
  r.width = 48;
  r.steps = steps;
  r.seed = 11;
  return r;
}

// DoP schedules 1,1,1; 2,2,2; 4,4,4 and 1,2,4,2,1,3 with members and leaders changing.
TEST(GroupStep, WanUlyssesGroupsGiveTheOneDeviceLatents) {
  Devices d("tiny-wan");
  const std::vector<std::vector<DeviceGroup>> schedules = {
      {{{0}}, {{0}}, {{0}}},
      {{{0, 1}}, {{0, 1}}, {{0, 1}}},
      {{{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {{0, 1, 2, 3}}},
      {{{0}}, {{1, 2}}, {{3, 0, 2, 1}}, {{2, 3}}, {{1}}, {{0, 3, 2}}},
  };
  for (const std::vector<DeviceGroup>& schedule : schedules) {
    const GenerateRequest request = wan_request(static_cast<int>(schedule.size()));
    const Tensor want = d.one_device(request);
    const Tensor got = d.on_groups(request, schedule);
    std::string dops;
    for (const DeviceGroup& g : schedule) dops += std::to_string(g.size()) + " ";
    EXPECT_LE(ditserve::testing::relative_error(got, want), 1e-5) << "DoP " << dops;
    EXPECT_GT(ditserve::testing::relative_error(want, d.start(request).latents()), 0.05);
  }
}

// Moving a UniPC state between devices mid-run carries its history: the run continues
// bit for bit as on one device. Dropping the history (a resume from the latents alone)
// changes the result, so the comparison would notice a lost history.
TEST(GroupStep, MovedUniPCStateKeepsItsHistory) {
  Devices d("tiny-wan");
  const GenerateRequest request = wan_request(4);
  const Tensor want = d.one_device(request);

  GenerationState moved = d.start(request);
  DiffusionTransformer& dit0 = d.pipeline(0).transformer();
  moved.step(d.backend(0), dit0);
  moved.step(d.backend(0), dit0);
  ASSERT_TRUE(moved.solver_history().has_value());
  EXPECT_EQ(moved.solver_history()->x0.size(), 2u);
  const GenerationState at_two = moved;
  moved.move_to(d.backend(0), d.backend(2));
  EXPECT_EQ(moved.solver_history()->x0[0].device(), d.backend(2).device());
  EXPECT_EQ(moved.solver_history()->last_sample.device(), d.backend(2).device());
  while (!moved.done()) moved.step(d.backend(2), d.pipeline(2).transformer());
  EXPECT_EQ(d.host(2, moved.latents()).to_vector_f32(), want.to_vector_f32());

  GenerationState forgetful(at_two.latents(), at_two.captions(), at_two.caption_lengths(),
                            at_two.options(), at_two.step_index());
  GenerationState restored = forgetful;
  restored.restore_solver_history(*at_two.solver_history());
  while (!forgetful.done()) forgetful.step(d.backend(0), dit0);
  while (!restored.done()) restored.step(d.backend(0), dit0);
  EXPECT_EQ(d.host(0, restored.latents()).to_vector_f32(), want.to_vector_f32());
  EXPECT_GT(ditserve::testing::relative_error(d.host(0, forgetful.latents()), want), 1e-4);

  // A history of another step is refused, naming it.
  GenerationState early = d.start(request);
  try {
    early.restore_solver_history(*at_two.solver_history());
    ADD_FAILURE() << "a step-2 history was accepted at step 0";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("history"));
  }
}

// PipelineOptions::cuda_graphs through the group step, on CPU devices (where a capture
// runs the work and a replay runs it again): one-device steps and each half of a
// two-device guidance split replay their captures, sequence-parallel steps look through
// the decorator to the model's stages, and the latents equal the eager pipeline's.
Tensor host_copy(Backend& be, const Tensor& t) {
  const std::unique_ptr<Backend> cpu = make_backend(Device::cpu());
  return transfer(be, t, *cpu);
}

TEST(GraphedGroupStep, GraphedPipelinesGiveTheEagerLatentsOnEveryKindOfGroup) {
  testing::CpuDevices devices(3);
  std::vector<std::unique_ptr<Pipeline>> graphed;
  for (int r = 0; r < 3; ++r)
    graphed.push_back(std::make_unique<Pipeline>(find_model("tiny"), devices[r], std::nullopt,
                                                 PipelineOptions{true}));
  Pipeline eager(find_model("tiny"), devices[0], std::nullopt);
  ASSERT_NE(dynamic_cast<GraphedTransformer*>(&graphed[0]->transformer()), nullptr);
  EXPECT_EQ(dynamic_cast<GraphedTransformer*>(&eager.transformer()), nullptr);
  EXPECT_TRUE(has_group_step(graphed[0]->transformer()));

  // One device three times (eager, capture, replay), both guidance halves twice (each
  // half's batch-1 key: eager, then captured), then sequence-parallel over three.
  const std::vector<DeviceGroup> schedule = {{{0}}, {{0}}, {{0}}, {{0, 1}}, {{0, 1}}, {{0, 2, 1}}, {{0}}};
  const GenerateRequest request = tiny_request(static_cast<int>(schedule.size()));
  GenerationState want = eager.start(request, eager.encode(request.prompt));
  while (!want.done()) want.step(devices[0], eager.transformer());

  GenerationState got = graphed[0]->start(request, graphed[0]->encode(request.prompt));
  for (const DeviceGroup& group : schedule) {
    std::vector<DiffusionTransformer*> members;
    for (int r : group.ranks) members.push_back(&graphed[static_cast<std::size_t>(r)]->transformer());
    group_step(devices.fabric(), group, members, got);
  }
  ASSERT_TRUE(got.done());
  EXPECT_LE(ditserve::testing::relative_error(host_copy(devices[0], got.latents()),
                                              host_copy(devices[0], want.latents())),
            1e-5);
  const auto& leader = dynamic_cast<GraphedTransformer&>(graphed[0]->transformer());
  const auto& second = dynamic_cast<GraphedTransformer&>(graphed[1]->transformer());
  EXPECT_EQ(leader.stats().captures, 2u);  // the batch-2 step and the prompt half's batch 1
  EXPECT_EQ(leader.stats().replays, 4u);
  EXPECT_EQ(second.stats().captures, 1u);  // the null caption's half
  EXPECT_EQ(leader.stats().capture_failures + second.stats().capture_failures, 0u);
}

}  // namespace
}  // namespace ditserve::runtime
