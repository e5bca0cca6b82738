#include "models/interfaces.h"

#include <string>
#include <utility>

#include "parallel/replicate.h"
#include "tensor/error.h"

namespace ditserve {

std::vector<DenoiseInputs> replicate_inputs(Fabric& fabric, const DeviceGroup& group,
                                            const DenoiseInputs& in) {
  const auto everywhere = [&](const Tensor& t) { return replicate(fabric, group, t, 0); };
  const std::vector<Tensor> latents = everywhere(in.latents);
  const std::vector<Tensor> timesteps = everywhere(in.timesteps);
  const std::vector<Tensor> captions = everywhere(in.captions);
  const std::vector<Tensor> lengths = everywhere(in.caption_lengths);
  std::vector<DenoiseInputs> out;
  for (std::size_t i = 0; i < group.ranks.size(); ++i) {
    DenoiseInputs mine = in;
    mine.latents = latents[i];
    mine.timesteps = timesteps[i];
    mine.captions = captions[i];
    mine.caption_lengths = lengths[i];
    out.push_back(std::move(mine));
  }
  return out;
}

void check_caption_lengths(std::string_view who, const Tensor& lengths, std::int64_t tokens) {
  DITSERVE_CHECK(lengths.defined() && lengths.device().is_cpu() && lengths.dtype() == DType::i32 &&
                     lengths.dim() == 1,
                 who, ": caption_lengths must be i32 [B] on a CPU device to be checked, got ",
                 lengths.defined() ? lengths.describe() : std::string("undefined"));
  for (const float n : lengths.to_vector_f32()) {
    DITSERVE_CHECK(n >= 1 && n <= static_cast<float>(tokens), who, ": caption_lengths holds ", n,
                   "; allowed 1..", tokens, " (the captions' token count)");
  }
}

Tensor VideoDecoder::decode_patch_parallel(SpatialShardContext&, const Tensor&, std::int64_t) {
  throw InvalidArgument("decode: this model's VAE has no patch-parallel decode; it decodes on one device");
}

}  // namespace ditserve
