#pragma once
#include "kernels/backend.h"

namespace ditserve {

// Rows of table [V, C] gathered by ids (i32 or i64, any shape) -> [*ids.shape, C].
// Throws if an id is outside [0, V) (checked on the host for CPU tensors; on CUDA an
// out-of-range id yields zeros).
Tensor embedding(Backend& be, const Tensor& table, const Tensor& ids);

// Sinusoidal timestep embedding: t f32 [B] -> f32 [B, dim] with f_i =
// max_period^(-i/half), half = dim/2: [cos(t f), sin(t f)] if cos_first else [sin, cos].
// An odd dim gets a zero last column.
Tensor timestep_embedding(Backend& be, const Tensor& t, int dim, bool cos_first,
                          float max_period = 10000.0f);

}  // namespace ditserve
