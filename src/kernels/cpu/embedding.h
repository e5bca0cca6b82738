#pragma once
#include "tensor/tensor.h"

namespace ditserve::cpu {

// out [n, C] = rows of table [V, C] (contiguous f32) picked by ids (contiguous i32 or
// i64, n elements). Throws InvalidArgument naming the first id outside [0, V), before
// writing anything.
void embedding(const Tensor& out, const Tensor& table, const Tensor& ids);

// out f32 [B, dim] from t f32 contiguous [B]. Frequencies and arguments are rounded to
// f32 as PyTorch computes them (freq = exp(-ln(max_period) i / half), arg = t * freq);
// sin and cos of the rounded argument are exact.
void timestep_embedding(const Tensor& out, const Tensor& t, int dim, bool cos_first,
                        float max_period);

}  // namespace ditserve::cpu
