#pragma once
// What the DiT tests of models/ and parallel/ share: random weights in which every block
// shows, and caption lengths in the form the models take.

#include <cstdint>
#include <vector>

#include "models/weights.h"
#include "tensor/tensor.h"

namespace ditserve::testing {

// `specs` with zero-initialised tensors made random and every random one at std 0.15.
// The releases' initialisation (std 0.02, zero biases) leaves each block's contribution
// far below the residual stream, so a wrong or wrongly sharded block would hide under a
// test's tolerance; with these weights every block, and the mixing across tokens, is
// visible in the output (SequenceParallelTest.CouplingIsVisible fails with the defaults).
inline std::vector<ParamSpec> strong_parameters(std::vector<ParamSpec> specs) {
  for (ParamSpec& s : specs) {
    if (s.init == ParamInit::zeros) s.init = ParamInit::normal;
    if (s.init == ParamInit::normal) s.std = 0.15f;
  }
  return specs;
}

// Host i32 tensor [n] of `values`: DenoiseInputs::caption_lengths.
inline Tensor caption_lengths(const std::vector<std::int32_t>& values) {
  Tensor out = Tensor::empty_host({static_cast<std::int64_t>(values.size())}, DType::i32);
  for (std::size_t i = 0; i < values.size(); ++i) out.data<std::int32_t>()[i] = values[i];
  return out;
}

}  // namespace ditserve::testing
