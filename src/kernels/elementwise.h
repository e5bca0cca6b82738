#pragma once
// Element-wise arithmetic with numpy broadcasting. Inputs share dtype and device;
// outputs are contiguous with the broadcast shape. Math in f32.

#include "kernels/backend.h"

namespace ditserve {

Tensor add(Backend& be, const Tensor& a, const Tensor& b);
Tensor mul(Backend& be, const Tensor& a, const Tensor& b);
// a + alpha * b (the sampler's z + dt * v).
Tensor add_scaled(Backend& be, const Tensor& a, const Tensor& b, float alpha);
// x + gate * y: the gated residual of adaLN blocks; gate broadcastable (e.g. [B, 1, C]).
Tensor gated_residual(Backend& be, const Tensor& x, const Tensor& gate, const Tensor& y);

}  // namespace ditserve
