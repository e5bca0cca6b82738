#pragma once
// Host-side tables of STDiT3's step preparation, computed as Open-Sora computes them.

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace ditserve {

// f32 value rounded through `dtype` (identity for f32): Open-Sora casts timestep, fps,
// height, width and the RoPE terms to the model dtype before using them.
float round_to_dtype(float value, DType dtype);

// PositionEmbedding2D for a rows x cols token grid, host f32 [rows * cols, dim], tokens
// row-major. Features [0, dim/2) encode the column, [dim/2, dim) the row, each as
// [sin(p f_k), cos(p f_k)] with f_k = 10000^(-2k/(dim/2)), where position
// p = index / scale * base_size / extent and base_size = round(sqrt(rows * cols)).
// REQUIRES dim % 4 == 0, scale > 0.
Tensor position_table_2d(std::int64_t rows, std::int64_t cols, std::int64_t dim, double scale);

// Temporal RoPE angles, host f32 [frames, freqs.size()]: angle = s * freqs[i], with s,
// freqs and the product each rounded through `dtype` as rotary-embedding-torch does in
// the model's dtype.
Tensor rope_angles_rounded(std::int64_t frames, const std::vector<float>& freqs, DType dtype);

}  // namespace ditserve
