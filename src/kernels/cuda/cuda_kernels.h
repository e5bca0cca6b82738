#pragma once
// Hand-written CUDA kernels behind the ops of kernels/*.h. The public ops validate
// arguments, allocate outputs and call these. Every function here:
//  - queues work on be.stream() and returns without synchronising;
//  - takes f32, bf16 or f16 floating tensors (math in f32) unless it says otherwise;
//  - gets `out` allocated by the caller: contiguous, correct shape and dtype.
// Library-backed ops (cuBLASLt GEMM, cuDNN attention and convolution) are declared in
// library_ops.h.

#include <array>
#include <vector>

#include "kernels/gemm.h"
#include "tensor/tensor.h"

namespace ditserve::cuda {

class CudaBackend;

// dst (any strides, dim <= 8) = src (same shape, any strides incl. 0 for broadcast).
// Any dtype; same dtype for both.
void copy_strided(CudaBackend& be, const Tensor& dst, const Tensor& src);
// out = src converted; both contiguous with equal numel; any dtype pair.
void cast(CudaBackend& be, const Tensor& out, const Tensor& src);
// out = 0; any dtype.
void fill_zero(CudaBackend& be, const Tensor& out);

enum class BinaryOp { add, mul, add_scaled };
// out = a op b (add_scaled: a + alpha * b); a and b are already expanded to out's shape
// (strides may be 0), dim <= 8.
void binary(CudaBackend& be, BinaryOp op, const Tensor& out, const Tensor& a,
            const Tensor& b, float alpha);
// out = x + gate * y; x, gate, y expanded to out's shape.
void gated_residual(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& gate,
                    const Tensor& y);
// out = act(x); both contiguous. Activation::none copies.
void activation(CudaBackend& be, Activation act, const Tensor& out, const Tensor& x);
// Row softmax over the last dim; x contiguous.
void softmax(CudaBackend& be, const Tensor& out, const Tensor& x);

// Row-wise norms over the last dim C of contiguous x; weight/bias [C] may be undefined.
void layer_norm(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& weight,
                const Tensor& bias, float eps);
void rms_norm(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& weight,
              float eps);
// out = LN(x) * (1 + scale) + shift; x contiguous; shift, scale expanded to x's shape
// (unit or zero stride on the last dim).
void modulate_layer_norm(CudaBackend& be, const Tensor& out, const Tensor& x,
                         const Tensor& shift, const Tensor& scale, float eps);
// x contiguous [N, S, C] (spatial flattened to S), groups divides C; weight/bias [C].
void group_norm(CudaBackend& be, const Tensor& out, const Tensor& x, int groups,
                const Tensor& weight, const Tensor& bias, float eps);

// x [B, S, H, D] with unit stride on D; angles f32 contiguous [S, D/2]; out contiguous.
void rope(CudaBackend& be, const Tensor& out, const Tensor& x, const Tensor& angles);

// table contiguous [V, C] (any float dtype); ids contiguous i32 or i64; out [numel(ids), C].
void embedding(CudaBackend& be, const Tensor& out, const Tensor& table, const Tensor& ids);
// t f32 contiguous [B]; out f32 [B, dim].
void timestep_embedding(CudaBackend& be, const Tensor& out, const Tensor& t, int dim,
                        bool cos_first, float max_period);

// The widest head attention_direct takes.
inline constexpr std::int64_t kMaxDirectHeadDim = 256;

// Exact attention (any float dtype, f32 softmax) for the cases cuDNN's fused kernel
// does not take (f32 inputs, odd head dims). Same contract as ditserve::attention:
// q [B, Sq, H, D], k/v [B, Sk, H, D] unit stride on D; out contiguous [B, Sq, H, D];
// key_lengths i32 [B] or undefined; bias expanded to [B, H, Sq, Sk] or undefined.
void attention_direct(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                      const Tensor& v, float scale, const Tensor& key_lengths,
                      const Tensor& bias);

// Whether the public ops use the short-sequence kernels below (attention_short,
// qk_norm_rope): yes unless the environment sets DITSERVE_SHORT_KERNELS=0 (read once), which
// selects the general paths (cuDNN / attention_direct, rms_norm then rope) so that a
// benchmark can time both in one build. tools/gpu_check checks both against the CPU.
bool short_kernels_enabled();

// Longest query and key sequences attention_short takes (two 16-row MMA tiles).
inline constexpr std::int64_t kMaxShortSequence = 32;

// Attention over short sequences (Sq, Sk <= kMaxShortSequence; bf16/f16; head dim 64 or
// 72; 16-byte aligned rows), no key lengths or bias: a block stages 2 or 4 heads of one
// batch index in shared memory, a warp per (head, 16 queries) on the tensor cores.
// Same contract as attention_direct otherwise. Returns false (queuing nothing) for any
// other configuration.
bool attention_short(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                     const Tensor& v, float scale);

// Most keys attention_few_keys takes: K and V of one (batch, head) staged in shared memory
// (2 x 320 rows of 144 B, plus 128 query rows: 108 KiB per block, two blocks per SM).
inline constexpr std::int64_t kMaxFewKeys = 320;

// Attention of any number of queries to 1..kMaxFewKeys keys (bf16/f16; head dim 64 or 72;
// 16-byte aligned rows), with optional key_lengths (i32 [B] on the device, read there), no
// bias: a block per (batch, head, 256 queries) stages that head's keys and values once, a
// warp per 32 queries on the tensor cores with an online softmax over chunks of 32 keys
// (few_keys_attention.cu). Same contract as attention_direct otherwise. Returns false
// (queuing nothing) for any other configuration.
bool attention_few_keys(CudaBackend& be, const Tensor& out, const Tensor& q, const Tensor& k,
                        const Tensor& v, float scale, const Tensor& key_lengths);

// In place on qkv [N, L, 3, H, D]: q and k (dim 2 index 0, 1) become RoPE(RMSNorm(x) *
// weight) (no rotation when angles is undefined), rounded as rms_norm and rope round:
// f32 statistics, the normed value rounded to the storage type, then rotated in f32 by
// angles[l, i] (f32 contiguous [L, D/2], sincosf) and rounded again. Weights [D]
// contiguous. A thread per 16-byte pack of a token's q and k (qk_norm_rope.cu); a token
// whose q and k exceed 1024 packs (2 * H * D * sizeof(T) > 16 KiB, e.g. STDiT3's temporal
// q/k viewed as [B, F, P * heads, D]) is taken as H / G tokens of G heads each, G the
// largest divisor of H that fits a block. Returns false (queuing nothing) when the layout
// does not allow 16-byte access (D or a stride of qkv not a multiple of 16 bytes, a base
// not 16-byte aligned), when one head's q and k exceed 1024 packs, or when the block's
// shared memory would pass 48 KiB (with RoPE: (G + 4) * D > 6144 in bf16/f16, (G + 2) * D
// > 3072 in f32); the caller then composes rms_norm and rope.
bool qk_norm_rope(CudaBackend& be, const Tensor& qkv, const Tensor& q_weight,
                  const Tensor& k_weight, float eps, const Tensor& angles);

}  // namespace ditserve::cuda
