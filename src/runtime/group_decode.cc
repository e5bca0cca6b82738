#include "runtime/group_decode.h"

#include <algorithm>
#include <memory>

#include "kernels/copy.h"
#include "parallel/spatial_shards.h"
#include "tensor/error.h"

namespace ditserve::runtime {

int max_decode_dop(const VideoDecoder& vae, std::int64_t latent_rows, int devices) {
  if (!vae.decodes_patch_parallel()) return 1;
  return static_cast<int>(std::clamp<std::int64_t>(latent_rows, 1, std::max(devices, 1)));
}

Tensor group_decode(Fabric& fabric, const DeviceGroup& group, Pipeline& leader,
                    const GenerationState& state) {
  group.validate(fabric);
  Backend& be = fabric.device(group.ranks[0]);
  DITSERVE_CHECK(&leader.backend() == &be, "group_decode: the leader's pipeline is on ",
                 leader.backend().device().str(), ", not on the group's first member ",
                 be.device().str());
  if (group.size() == 1) return leader.decode(state);
  DITSERVE_CHECK(state.done(), "decode: the state has finished ", state.step_index(), " of ",
                 state.num_steps(), " steps");
  SpatialShardContext ctx(fabric, group);  // member 0 is the leader: the video lands there
  const Tensor& latents = state.latents();
  const std::int64_t frames = state.options().frames;
  const Tensor video = leader.vae().decode_patch_parallel(ctx, latents, frames);
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const Tensor on_host = transfer(be, video, *host);
  return on_host.dtype() == DType::f32 ? on_host : cast(*host, on_host, DType::f32);
}

}  // namespace ditserve::runtime
