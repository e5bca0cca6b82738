#include "runtime/group_decode.h"

#include <algorithm>
#include <memory>

#include "kernels/copy.h"
#include "models/opensora_vae.h"
#include "models/wan_vae.h"
#include "parallel/spatial_shards.h"
#include "tensor/error.h"

namespace ditserve::runtime {

bool has_group_decode(const VideoDecoder& vae) {
  return dynamic_cast<const OpenSoraVAE*>(&vae) != nullptr ||
         dynamic_cast<const WanVAE*>(&vae) != nullptr;
}

int max_decode_dop(const VideoDecoder& vae, std::int64_t latent_rows, int devices) {
  if (!has_group_decode(vae)) return 1;
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
  Tensor video;
  if (auto* opensora = dynamic_cast<OpenSoraVAE*>(&leader.vae())) {
    video = opensora->decode_patch_parallel(ctx, latents, frames);
  } else if (auto* wan = dynamic_cast<WanVAE*>(&leader.vae())) {
    video = wan->decode_patch_parallel(ctx, latents, frames);
  } else {
    throw InvalidArgument("group_decode: this model's VAE has no patch-parallel decode; it runs on one device");
  }
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const Tensor on_host = transfer(be, video, *host);
  return on_host.dtype() == DType::f32 ? on_host : cast(*host, on_host, DType::f32);
}

}  // namespace ditserve::runtime
