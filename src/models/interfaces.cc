#include "models/interfaces.h"

#include "tensor/error.h"

namespace ditserve {

Tensor VideoDecoder::decode_patch_parallel(SpatialShardContext&, const Tensor&, std::int64_t) {
  throw InvalidArgument("decode: this model's VAE has no patch-parallel decode; it decodes on one device");
}

}  // namespace ditserve
