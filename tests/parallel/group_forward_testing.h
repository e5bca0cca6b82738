#pragma once
// The fixture the sequence-parallel schemes' tests share: a tiny DiT loaded from the same
// weights on each of four CPU devices (one fabric) and on the host, where it gives the
// single-device forward the group forwards are compared against.

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "comm/fabric.h"
#include "kernels/backend.h"
#include "kernels/copy.h"
#include "models/interfaces.h"
#include "models/weights.h"
#include "parallel/replicate.h"
#include "support/cpu_devices.h"

namespace ditserve::testing {

// Ranks 0 .. k-1.
inline DeviceGroup first(int k) {
  DeviceGroup g;
  for (int r = 0; r < k; ++r) g.ranks.push_back(r);
  return g;
}

// Model: STDiT3 or WanTransformer (Model(config, loader), prepare_stages(inputs), config()).
// Scheme: its sequence-parallel step (forward(fabric, group, members' stages)).
template <typename Model, typename Scheme>
class GroupForwardTest : public ::testing::Test {
 protected:
  using Config = std::remove_cvref_t<decltype(std::declval<const Model&>().config())>;
  using Stages = typename decltype(std::declval<Model&>().prepare_stages(
      std::declval<const DenoiseInputs&>()))::element_type;

  static constexpr int kRanks = 4;

  GroupForwardTest(Config config, std::vector<ParamSpec> specs, std::uint64_t seed)
      : config_(std::move(config)),
        source_(random_weights(std::move(specs), seed)),
        host_(make_backend(Device::cpu())) {
    for (int r = 0; r < kRanks; ++r) {
      models_.push_back(
          std::make_unique<Model>(config_, WeightLoader(*source_, devices_[r], DType::f32)));
    }
    reference_ = std::make_unique<Model>(config_, WeightLoader(*source_, *host_, DType::f32));
  }

  Backend& device(int rank) { return devices_[rank]; }

  // Host inputs with their tensors moved to `rank`.
  DenoiseInputs on_rank(const DenoiseInputs& host_in, int rank) {
    DenoiseInputs in = host_in;
    in.latents = transfer(*host_, host_in.latents, device(rank));
    in.timesteps = transfer(*host_, host_in.timesteps, device(rank));
    in.captions = transfer(*host_, host_in.captions, device(rank));
    in.caption_lengths = transfer(*host_, host_in.caption_lengths, device(rank));
    return in;
  }

  struct Prepared {
    std::vector<std::unique_ptr<Stages>> owned;
    std::vector<Stages*> members;
  };

  // Every member's stages for `in` (tensors on the group's first member).
  Prepared prepare(const DeviceGroup& group, const DenoiseInputs& in) {
    const std::vector<DenoiseInputs> mine = replicate_inputs(devices_.fabric(), group, in);
    Prepared out;
    for (std::size_t i = 0; i < group.ranks.size(); ++i) {
      out.owned.push_back(models_[static_cast<std::size_t>(group.ranks[i])]->prepare_stages(mine[i]));
      out.members.push_back(out.owned.back().get());
    }
    return out;
  }

  // The same for host inputs, replicated from the group's first member.
  Prepared prepare_host(const DeviceGroup& group, const DenoiseInputs& host_in) {
    return prepare(group, on_rank(host_in, group.ranks[0]));
  }

  // The scheme's group forward of `in` (tensors on the group's first member); the
  // prediction stays on that member.
  Tensor group_forward(const DeviceGroup& group, const DenoiseInputs& in) {
    const Prepared prepared = prepare(group, in);
    Scheme scheme;
    return scheme.forward(devices_.fabric(), group, prepared.members);
  }

  // The group forward of host inputs, returned on the host.
  Tensor group_forward_host(const DeviceGroup& group, const DenoiseInputs& host_in) {
    const int root = group.ranks[0];
    const Tensor v = group_forward(group, on_rank(host_in, root));
    EXPECT_EQ(v.device(), device(root).device());
    return transfer(device(root), v, *host_);
  }

  Config config_;
  std::unique_ptr<WeightSource> source_;
  std::unique_ptr<Backend> host_;
  CpuDevices devices_{kRanks};
  std::vector<std::unique_ptr<Model>> models_;
  std::unique_ptr<Model> reference_;
};

}  // namespace ditserve::testing
