#pragma once
#include "kernels/backend.h"

namespace ditserve {

// GELU: exact erf form, or the tanh approximation (PyTorch's approximate="tanh",
// transformers' gelu_new).
Tensor gelu(Backend& be, const Tensor& x, bool tanh_approximation);
Tensor silu(Backend& be, const Tensor& x);
// Softmax over the last dim, computed in f32.
Tensor softmax(Backend& be, const Tensor& x);

}  // namespace ditserve
