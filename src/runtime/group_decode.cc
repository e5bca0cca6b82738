#include "runtime/group_decode.h"

#include <algorithm>
#include <memory>
#include <string>

#include "kernels/copy.h"
#include "parallel/spatial_shards.h"
#include "tensor/error.h"

namespace ditserve::runtime {

int max_decode_dop(const VideoDecoder& vae, std::int64_t latent_rows, int devices) {
  if (!vae.decodes_patch_parallel()) return 1;
  return static_cast<int>(std::clamp<std::int64_t>(latent_rows, 1, std::max(devices, 1)));
}

Tensor group_decode(Fabric& fabric, const DeviceGroup& group, const std::vector<Pipeline*>& members,
                    const GenerationState& state) {
  group.validate(fabric);
  DITSERVE_CHECK(static_cast<int>(members.size()) == group.size() && members[0] != nullptr,
                 "group_decode: members: ", members.size(), " pipelines for a group of ",
                 group.size(), ", the leader's first and required");
  for (int i = 0; i < group.size(); ++i) {
    const Pipeline* p = members[static_cast<std::size_t>(i)];
    Backend& be = fabric.device(group.ranks[static_cast<std::size_t>(i)]);
    DITSERVE_CHECK(p == nullptr || &p->backend() == &be, "group_decode: the ",
                   i == 0 ? std::string("leader") : "member " + std::to_string(i),
                   "'s pipeline is on ", p == nullptr ? std::string() : p->backend().device().str(),
                   ", not on the group's member ", i, " ", be.device().str());
  }
  Pipeline& leader = *members[0];
  if (group.size() == 1) return leader.decode(state);
  DITSERVE_CHECK(state.done(), "decode: the state has finished ", state.step_index(), " of ",
                 state.num_steps(), " steps");
  MemberParams own;
  own.model = leader.vae().loaded_parameters();
  for (const Pipeline* p : members) {
    own.members.push_back(p == nullptr ? std::vector<Tensor>{} : p->vae().loaded_parameters());
  }
  // Member 0 is the leader: the video lands there.
  SpatialShardContext ctx(fabric, group, std::move(own));
  const Tensor& latents = state.latents();
  const std::int64_t frames = state.options().frames;
  Backend& be = leader.backend();
  const Tensor video = leader.vae().decode_patch_parallel(ctx, latents, frames);
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const Tensor on_host = transfer(be, video, *host);
  return on_host.dtype() == DType::f32 ? on_host : cast(*host, on_host, DType::f32);
}

Tensor group_decode(Fabric& fabric, const DeviceGroup& group, Pipeline& leader,
                    const GenerationState& state) {
  std::vector<Pipeline*> members(static_cast<std::size_t>(std::max(group.size(), 1)), nullptr);
  members[0] = &leader;
  return group_decode(fabric, group, members, state);
}

}  // namespace ditserve::runtime
