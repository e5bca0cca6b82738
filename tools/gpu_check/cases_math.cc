// GEMM, batched matmul, attention and convolution cases.

#include <cmath>
#include <sstream>

#include "harness.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/copy.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/gemm.h"
#include "tensor/error.h"

namespace ditserve::gpu_check {
namespace {

const char* act_name(Activation act) {
  switch (act) {
    case Activation::none: return "none";
    case Activation::gelu_tanh: return "gelu_tanh";
    case Activation::gelu_exact: return "gelu_exact";
    case Activation::silu: return "silu";
  }
  return "?";
}

void add_linear(std::vector<Case>& cases) {
  // Weight scale ~1/sqrt(K) keeps outputs O(1), where the activations are not trivial.
  const float ws = 1.0f / std::sqrt(200.0f);
  cases.push_back({"linear", "x[3,77,200] w[384,200] no bias, act none",
                   {floating({3, 77, 200}), floating({384, 200}, ws)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return linear(be, in[0], in[1]);
                   }});
  for (const Activation act :
       {Activation::none, Activation::gelu_tanh, Activation::gelu_exact, Activation::silu}) {
    cases.push_back({"linear", std::string("x[3,77,200] w[384,200] bias, act ") + act_name(act),
                     {floating({3, 77, 200}), floating({384, 200}, ws), floating({384}, 0.5f)},
                     [act](Backend& be, const std::vector<Tensor>& in) {
                       return linear(be, in[0], in[1], in[2], act);
                     }});
  }
  cases.push_back({"linear", "x = narrow of [231,300] to [231,200] (row stride 300), gelu_tanh",
                   {floating({231, 300}), floating({130, 200}, ws), floating({130}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return linear(be, in[0].narrow(1, 50, 200), in[1], in[2],
                                   Activation::gelu_tanh);
                   }});
}

void add_linear_residual(std::vector<Case>& cases) {
  // Shapes of STDiT3-XL/2's cross_proj (no gate), spatial attn.proj and mlp.fc2 (gated),
  // each with its 2 CFG samples; weights ~1/sqrt(K) so the product and the residual are
  // both O(1) and an error in either shows.
  const auto run = [](bool has_bias, bool has_gate) {
    return [has_bias, has_gate](Backend& be, const std::vector<Tensor>& in) {
      const Tensor bias = has_bias ? in[2] : Tensor();
      const std::size_t next = has_bias ? 3 : 2;
      return linear_residual(be, in[0], in[1], bias, in[next], has_gate ? in[next + 1] : Tensor());
    };
  };
  const float ws = 1.0f / std::sqrt(1152.0f), ws_fc2 = 1.0f / std::sqrt(4608.0f);
  cases.push_back({"linear_residual", "x[2,300,1152] w[1152,1152] bias + residual, no gate",
                   {floating({2, 300, 1152}), floating({1152, 1152}, ws), floating({1152}, 0.5f),
                    floating({2, 300, 1152})},
                   run(true, false)});
  cases.push_back({"linear_residual", "x[2,300,1152] w[1152,1152] bias, gate[2,1152]",
                   {floating({2, 300, 1152}), floating({1152, 1152}, ws), floating({1152}, 0.5f),
                    floating({2, 300, 1152}), floating({2, 1152}, 1.0f, 0.5f)},
                   run(true, true)});
  cases.push_back({"linear_residual", "x[2,300,4608] w[1152,4608] bias, gate[2,1152] (fc2)",
                   {floating({2, 300, 4608}), floating({1152, 4608}, ws_fc2),
                    floating({1152}, 0.5f), floating({2, 300, 1152}),
                    floating({2, 1152}, 1.0f, 0.5f)},
                   run(true, true)});
  cases.push_back({"linear_residual", "x[1,300,1152] w[1152,1152] bias, gate[1,1152]",
                   {floating({1, 300, 1152}), floating({1152, 1152}, ws), floating({1152}, 0.5f),
                    floating({1, 300, 1152}), floating({1, 1152}, 1.0f, 0.5f)},
                   run(true, true)});
  cases.push_back({"linear_residual", "x[3,77,200] w[130,200] no bias, gate[3,130]",
                   {floating({3, 77, 200}), floating({130, 200}, 1.0f / std::sqrt(200.0f)),
                    floating({3, 77, 130}), floating({3, 130}, 1.0f, 0.5f)},
                   run(false, true)});
  cases.push_back({"linear_residual",
                   "x[2,4,75,1152] (4-D tokens) bias, gate = row 2 of [2,6,1152]",
                   {floating({2, 4, 75, 1152}), floating({1152, 1152}, ws), floating({1152}, 0.5f),
                    floating({2, 4, 75, 1152}), floating({2, 6, 1152}, 1.0f, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return linear_residual(be, in[0], in[1], in[2], in[3], in[4].select(1, 2));
                   }});
  cases.push_back({"linear_residual",
                   "residual narrowed from [2,300,1280] (row stride 1280), gate[2,1152]",
                   {floating({2, 300, 1152}), floating({1152, 1152}, ws), floating({1152}, 0.5f),
                    floating({2, 300, 1280}), floating({2, 1152}, 1.0f, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return linear_residual(be, in[0], in[1], in[2], in[3].narrow(2, 64, 1152),
                                            in[4]);
                   }});
}

void add_linear_stacked(std::vector<Case>& cases) {
  // STDiT3's temporal q, k, v: one batched GEMM over the three blocks of attn.qkv, x shared
  // (row counts not multiples of 128: 2 x 5 x 77 = 770 tokens); blocks of 130 outputs
  // (batch strides off 256 bytes) take a GEMM per block.
  const float ws = 1.0f / std::sqrt(1152.0f);
  cases.push_back({"linear_stacked", "x[2,5,77,1152] w[3456,1152] bias, 3 groups (temporal qkv)",
                   {floating({2, 5, 77, 1152}), floating({3456, 1152}, ws), floating({3456}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return linear_stacked(be, in[0], in[1], in[2], 3);
                   }});
  cases.push_back({"linear_stacked", "x[3,100,256] w[768,256] no bias, 3 groups (batched)",
                   {floating({3, 100, 256}), floating({768, 256}, 1.0f / 16.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return linear_stacked(be, in[0], in[1], Tensor(), 3);
                   }});
  cases.push_back({"linear_stacked", "x[333,200] w[390,200] no bias, 3 groups",
                   {floating({333, 200}), floating({390, 200}, 1.0f / std::sqrt(200.0f))},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return linear_stacked(be, in[0], in[1], Tensor(), 3);
                   }});
  cases.push_back({"linear_stacked",
                   "x[231,200] narrowed from [231,300], w[520,200] bias, 4 groups",
                   {floating({231, 300}), floating({520, 200}, 1.0f / std::sqrt(200.0f)),
                    floating({520}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return linear_stacked(be, in[0].narrow(1, 50, 200), in[1], in[2], 4);
                   }});
}

void add_matmul(std::vector<Case>& cases) {
  cases.push_back({"matmul", "a[4,65,96] @ b[4,96,130]",
                   {floating({4, 65, 96}), floating({4, 96, 130})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return matmul(be, in[0], in[1]);
                   }});
  cases.push_back({"matmul", "a = [4,96,65]^T, b[4,96,130]",
                   {floating({4, 96, 65}), floating({4, 96, 130})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return matmul(be, in[0].transpose(1, 2), in[1]);
                   }});
  cases.push_back({"matmul", "a[4,65,96], b = [4,130,96]^T",
                   {floating({4, 65, 96}), floating({4, 130, 96})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return matmul(be, in[0], in[1].transpose(1, 2));
                   }});
  cases.push_back({"matmul", "a[2,3,65,96] @ shared b[96,130]",
                   {floating({2, 3, 65, 96}), floating({96, 130})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return matmul(be, in[0], in[1]);
                   }});
  cases.push_back({"matmul", "a = [3,96,65]^T @ shared b = [130,96]^T",
                   {floating({3, 96, 65}), floating({130, 96})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return matmul(be, in[0].transpose(1, 2), in[1].transpose(0, 1));
                   }});
}

struct AttnShape {
  std::int64_t b, sq, sk, h, d;
};

std::string attn_desc(const AttnShape& s, const std::string& extra) {
  std::ostringstream os;
  os << "B" << s.b << " Sq" << s.sq << " Sk" << s.sk << " H" << s.h << " D" << s.d << extra;
  return os.str();
}

// The attention kernels gpu_check calls directly: through the public op a kernel that
// declined would fall back to cuDNN silently.
enum class AttentionKernel { short_sequences, few_keys };

// `kernel` itself on the GPU (failing if it declines), the public op with `p` on the CPU.
// Scale 1/sqrt(D) unless p.scale is set.
Tensor kernel_or_reference(Backend& be, AttentionKernel kernel, const Tensor& q, const Tensor& k,
                           const Tensor& v, const AttentionParams& p) {
  if (be.device().is_cpu()) return attention(be, q, k, v, p);
  Tensor out = be.empty({q.size(0), q.size(1), q.size(2), q.size(3)}, q.dtype());
  const float scale = p.scale.value_or(1.0f / std::sqrt(static_cast<float>(q.size(3))));
  auto& cuda_be = cuda::as_cuda(be);
  const bool ran = kernel == AttentionKernel::short_sequences
                       ? cuda::attention_short(cuda_be, out, q, k, v, scale)
                       : cuda::attention_few_keys(cuda_be, out, q, k, v, scale, p.key_lengths);
  const char* name =
      kernel == AttentionKernel::short_sequences ? "attention_short" : "attention_few_keys";
  DITSERVE_CHECK(ran, name, " declined q ", q.describe(), ", k ", k.describe(), ", v ",
                 v.describe());
  return out;
}

// attention_short on the GPU; scale 1/sqrt(D) unless `scale` > 0.
Tensor short_or_reference(Backend& be, const Tensor& q, const Tensor& k, const Tensor& v,
                          float scale = 0.0f) {
  AttentionParams p;
  if (scale > 0.0f) p.scale = scale;
  return kernel_or_reference(be, AttentionKernel::short_sequences, q, k, v, p);
}

// The short-sequence kernel's own cases (bf16 and f16). A block takes 4 heads of one
// batch index (2 when Sq > 16, two warps per head), Sq and Sk are padded to 16 or 32:
// shapes on both sides of 16, Sq = Sk = 1, 15, 30, 32, head counts that leave a partial
// block, D = 64 and 72, and the layouts the temporal blocks pass. q and k entries of
// size ~2.5 give scores of standard deviation ~2 (a peaked softmax).
void add_attention_short(std::vector<Case>& cases) {
  const std::vector<DType> half_types = {DType::bf16, DType::f16};
  const float qk_scale = 2.5f;
  for (const AttnShape s :
       {AttnShape{24, 15, 15, 16, 72}, AttnShape{40, 15, 15, 16, 64}, AttnShape{12, 30, 30, 5, 72},
        AttnShape{7, 30, 30, 16, 64}, AttnShape{5, 1, 1, 2, 72}, AttnShape{9, 1, 1, 7, 64},
        AttnShape{6, 32, 32, 3, 72}, AttnShape{4, 32, 32, 4, 64}, AttnShape{10, 16, 16, 6, 72},
        AttnShape{4, 16, 17, 6, 72}, AttnShape{4, 17, 16, 3, 64}, AttnShape{3, 20, 9, 5, 72},
        AttnShape{6, 7, 19, 3, 64}, AttnShape{3, 15, 15, 1, 72}}) {
    cases.push_back({"attention_short", attn_desc(s, ""),
                     {floating({s.b, s.sq, s.h, s.d}, qk_scale),
                      floating({s.b, s.sk, s.h, s.d}, qk_scale), floating({s.b, s.sk, s.h, s.d})},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return short_or_reference(be, in[0], in[1], in[2]);
                     },
                     half_types});
  }
  cases.push_back({"attention_short", "B5 Sq15 Sk15 H6 D72 scale 0.3",
                   {floating({5, 15, 6, 72}), floating({5, 15, 6, 72}), floating({5, 15, 6, 72})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return short_or_reference(be, in[0], in[1], in[2], 0.3f);
                   },
                   half_types});
  // The temporal block today: q/k/v views of qkv [positions, frames, 3, heads, D].
  for (const AttnShape s : {AttnShape{6, 15, 15, 16, 72}, AttnShape{5, 30, 30, 16, 72},
                            AttnShape{4, 15, 15, 16, 64}}) {
    cases.push_back({"attention_short", attn_desc(s, " q/k/v views of qkv[B,S,3,H,D]"),
                     {floating({s.b, s.sq, 3, s.h, s.d}, qk_scale)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return short_or_reference(be, in[0].select(2, 0), in[0].select(2, 1),
                                                 in[0].select(2, 2));
                     },
                     half_types});
  }
  // (position, head) as one head index: H = positions x 16 with head stride D and a
  // sequence stride of 3 * H * D; 131 heads leave a partial block.
  for (const AttnShape s : {AttnShape{2, 15, 15, 9 * 16, 72}, AttnShape{2, 15, 15, 131, 72},
                            AttnShape{2, 30, 30, 8 * 16 + 1, 64}, AttnShape{2, 1, 1, 8 * 16, 72}}) {
    cases.push_back({"attention_short", attn_desc(s, " q/k/v views of qkv[B,S,3,H,D], large H"),
                     {floating({s.b, s.sq, 3, s.h, s.d}, qk_scale)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return short_or_reference(be, in[0].select(2, 0), in[0].select(2, 1),
                                                 in[0].select(2, 2));
                     },
                     half_types});
  }
  // Blocks of one stacked [3, B, S, H, D] (sequence stride H * D), as the temporal block
  // without permutes passes them (H = 25 positions x 16 heads).
  for (const AttnShape s : {AttnShape{2, 15, 15, 25 * 16, 72}, AttnShape{2, 30, 30, 37, 64}}) {
    cases.push_back({"attention_short", attn_desc(s, " q/k/v = [3,B,S,H,D].select(0, i)"),
                     {floating({3, s.b, s.sq, s.h, s.d}, qk_scale)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return short_or_reference(be, in[0].select(0, 0), in[0].select(0, 1),
                                                 in[0].select(0, 2));
                     },
                     half_types});
  }
  {
    // Head stride 3 * D (not D): q/k/v interleaved per head, [B, S, H, 3, D].
    const AttnShape s{5, 15, 15, 6, 72};
    cases.push_back({"attention_short", attn_desc(s, " q/k/v views of [B,S,H,3,D]"),
                     {floating({s.b, s.sq, s.h, 3, s.d}, qk_scale)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return short_or_reference(be, in[0].select(3, 0), in[0].select(3, 1),
                                                 in[0].select(3, 2));
                     },
                     half_types});
  }
  {
    // Sq != Sk from different tensors, keys and values narrowed out of a longer sequence
    // (k/v batch stride 40 * 2 * H * D, sequence stride 2 * H * D).
    const AttnShape s{3, 9, 23, 7, 72};
    cases.push_back({"attention_short", attn_desc(s, " k/v = [B,40,2,H,D].narrow(1,5,23)"),
                     {floating({s.b, s.sq, s.h, s.d}, qk_scale),
                      floating({s.b, 40, 2, s.h, s.d}, qk_scale)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       const Tensor kv = in[1].narrow(1, 5, 23);
                       return short_or_reference(be, in[0], kv.select(2, 0), kv.select(2, 1));
                     },
                     half_types});
  }
}

// attention_few_keys on the GPU; `lengths` undefined: all keys.
Tensor few_keys_or_reference(Backend& be, const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& lengths = {}) {
  AttentionParams p;
  p.key_lengths = lengths;
  return kernel_or_reference(be, AttentionKernel::few_keys, q, k, v, p);
}

// The few-keys kernel's own cases (bf16 and f16): a block stages all keys of one (batch,
// head), padded to a multiple of 32, and walks them in chunks of 32 with an online softmax;
// a warp takes 32 queries at a time of a 256-query block. Key counts 1, 17, 64, 77, 300 and 320
// (one chunk, a partial chunk, exact chunks, STDiT3's caption, the limit), query counts that
// leave a tile or a block partly empty, key lengths (the first = Sk, the others random; all
// 1 skips every chunk past the first), D = 64 and 72, odd head counts, and k/v as views of
// a fused kv projection [B, L, 2, H, D] as STDiT3's cross-attention passes them. Entries
// of size ~2.5 give peaked softmaxes (scores of standard deviation ~2).
void add_attention_few_keys(std::vector<Case>& cases) {
  const std::vector<DType> half_types = {DType::bf16, DType::f16};
  const float qk_scale = 2.5f;
  for (const AttnShape s :
       {AttnShape{2, 37, 1, 3, 72}, AttnShape{2, 1, 17, 16, 72}, AttnShape{3, 300, 64, 5, 64},
        AttnShape{2, 1000, 77, 16, 72}, AttnShape{2, 257, 300, 3, 72},
        AttnShape{1, 600, 320, 2, 64}, AttnShape{4, 144, 144, 16, 72}}) {
    cases.push_back({"attention_few_keys", attn_desc(s, ""),
                     {floating({s.b, s.sq, s.h, s.d}, qk_scale),
                      floating({s.b, s.sk, s.h, s.d}, qk_scale), floating({s.b, s.sk, s.h, s.d})},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return few_keys_or_reference(be, in[0], in[1], in[2]);
                     },
                     half_types});
  }
  for (const AttnShape s : {AttnShape{3, 1000, 300, 16, 72}, AttnShape{4, 513, 300, 3, 64},
                            AttnShape{2, 40, 130, 5, 72}}) {
    cases.push_back({"attention_few_keys", attn_desc(s, " k/v views of kv[B,L,2,H,D], key_lengths"),
                     {floating({s.b, s.sq, s.h, s.d}, qk_scale),
                      floating({s.b, s.sk, 2, s.h, s.d}, qk_scale), lengths(s.b, s.sk)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return few_keys_or_reference(be, in[0], in[1].select(2, 0),
                                                    in[1].select(2, 1), in[2]);
                     },
                     half_types});
  }
  {
    const AttnShape s{3, 700, 300, 4, 72};
    cases.push_back({"attention_few_keys", attn_desc(s, " key_lengths all 1"),
                     {floating({s.b, s.sq, s.h, s.d}, qk_scale),
                      floating({s.b, s.sk, s.h, s.d}, qk_scale), floating({s.b, s.sk, s.h, s.d}),
                      lengths(s.b, 1)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return few_keys_or_reference(be, in[0], in[1], in[2], in[3]);
                     },
                     half_types});
  }
  {
    // STDiT3's cross-attention at a reduced token count, through the public op.
    const AttnShape s{2, 4000, 300, 16, 72};
    cases.push_back({"attention", attn_desc(s, " kv[B,L,2,H,D] views, key_lengths (few keys)"),
                     {floating({s.b, s.sq, s.h, s.d}, qk_scale),
                      floating({s.b, s.sk, 2, s.h, s.d}, qk_scale), lengths(s.b, s.sk)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       AttentionParams p;
                       p.key_lengths = in[2];
                       return attention(be, in[0], in[1].select(2, 0), in[1].select(2, 1), p);
                     },
                     half_types});
  }
}

void add_attention(std::vector<Case>& cases) {
  // Scores of O(1): q and k entries of size ~ 2 / sqrt(sqrt(D)) each side.
  auto qk = [](const AttnShape& s, std::int64_t seq) {
    return floating({s.b, seq, s.h, s.d}, 2.0f / std::sqrt(std::sqrt(static_cast<float>(s.d))));
  };
  // D = 512 (the SD VAE's mid-block head) takes the composed matrix-product path on CUDA.
  for (const AttnShape s : {AttnShape{2, 100, 100, 3, 64}, AttnShape{2, 77, 200, 3, 72},
                            AttnShape{1, 130, 257, 2, 128}, AttnShape{2, 50, 70, 2, 20},
                            AttnShape{2, 96, 96, 1, 512}}) {
    cases.push_back({"attention", attn_desc(s, ""),
                     {qk(s, s.sq), qk(s, s.sk), floating({s.b, s.sk, s.h, s.d})},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return attention(be, in[0], in[1], in[2]);
                     }});
  }
  {
    const AttnShape s{2, 77, 200, 3, 72};
    cases.push_back({"attention", attn_desc(s, " key_lengths"),
                     {qk(s, s.sq), qk(s, s.sk), floating({s.b, s.sk, s.h, s.d}), lengths(s.b, s.sk)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       AttentionParams p;
                       p.key_lengths = in[3];
                       return attention(be, in[0], in[1], in[2], p);
                     }});
    cases.push_back({"attention", attn_desc(s, " bias[1,H,Sq,Sk] scale 1"),
                     {floating({s.b, s.sq, s.h, s.d}, 0.3f), floating({s.b, s.sk, s.h, s.d}, 0.3f),
                      floating({s.b, s.sk, s.h, s.d}), floating({1, s.h, s.sq, s.sk}, 2.0f)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       AttentionParams p;
                       p.scale = 1.0f;
                       p.bias = in[3];
                       return attention(be, in[0], in[1], in[2], p);
                     }});
  }
  {
    const AttnShape s{2, 90, 300, 4, 128};
    cases.push_back({"attention", attn_desc(s, " key_lengths + bias[B,H,Sq,Sk]"),
                     {qk(s, s.sq), qk(s, s.sk), floating({s.b, s.sk, s.h, s.d}),
                      lengths(s.b, s.sk), floating({s.b, s.h, s.sq, s.sk}, 1.5f)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       AttentionParams p;
                       p.key_lengths = in[3];
                       p.bias = in[4];
                       return attention(be, in[0], in[1], in[2], p);
                     }});
  }
  // Short sequences (STDiT3's temporal attention) through the public op: attention_short
  // in 16-bit; the longest it takes (32), head dims 64 and 72 (128 goes to cuDNN), Sq != Sk.
  for (const AttnShape s : {AttnShape{96, 15, 15, 4, 72}, AttnShape{8, 32, 32, 2, 64}, AttnShape{4, 20, 20, 2, 128},
                            AttnShape{6, 7, 19, 3, 64}, AttnShape{5, 1, 1, 2, 72}}) {
    cases.push_back({"attention", attn_desc(s, " (short)"),
                     {qk(s, s.sq), qk(s, s.sk), floating({s.b, s.sk, s.h, s.d})},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return attention(be, in[0], in[1], in[2]);
                     },
                     {DType::f32, DType::bf16, DType::f16}});
  }
  {
    const AttnShape s{64, 30, 30, 4, 72};
    cases.push_back({"attention", attn_desc(s, " (short) q/k/v views of qkv[B,S,3,H,D]"),
                     {floating({s.b, s.sq, 3, s.h, s.d}, 0.7f)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return attention(be, in[0].select(2, 0), in[0].select(2, 1),
                                        in[0].select(2, 2));
                     },
                     {DType::f32, DType::bf16, DType::f16}});
  }
  add_attention_short(cases);
  {
    // q, k, v as strided views of one fused projection [B, S, 3, H, D].
    const AttnShape s{2, 120, 120, 4, 72};
    cases.push_back({"attention", attn_desc(s, " q/k/v views of qkv[B,S,3,H,D]"),
                     {floating({s.b, s.sq, 3, s.h, s.d}, 0.7f)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return attention(be, in[0].select(2, 0), in[0].select(2, 1),
                                        in[0].select(2, 2));
                     }});
  }
  {
    // The direct kernel in 16-bit (the public op sends bf16 to cuDNN when it can).
    const AttnShape s{2, 77, 200, 3, 72};
    cases.push_back(
        {"attention_direct", attn_desc(s, " key_lengths + bias[1,H,Sq,Sk]"),
         {qk(s, s.sq), qk(s, s.sk), floating({s.b, s.sk, s.h, s.d}), lengths(s.b, s.sk),
          floating({1, s.h, s.sq, s.sk}, 1.5f)},
         [](Backend& be, const std::vector<Tensor>& in) {
           AttentionParams p;
           p.key_lengths = in[3];
           p.bias = in[4];
           if (be.device().is_cpu()) return attention(be, in[0], in[1], in[2], p);
           auto& gpu = cuda::as_cuda(be);
           Tensor out = be.empty(in[0].shape(), in[0].dtype());
           const float scale = 1.0f / std::sqrt(static_cast<float>(in[0].size(3)));
           cuda::attention_direct(gpu, out, in[0], in[1], in[2], scale, in[3],
                                  in[4].expand({in[0].size(0), in[0].size(2), in[0].size(1),
                                                in[1].size(1)}));
           return out;
         },
         {DType::f32, DType::bf16, DType::f16}});
  }
}

// One cuDNN attention problem twice with different data (and key lengths): the first call
// plans it (timing the candidate engine configurations with autotuning on), the second
// must reuse that plan (no new cache entry) and still be right. On CUDA it also asserts
// what the plan cache did. `cross`: STDiT3's cross-attention shape, 300 padded keys;
// otherwise the spatial block's layout, q/k/v views of one qkv [B, S, 3, H, D].
Case cudnn_attention_twice(bool cross) {
  const AttnShape s = cross ? AttnShape{2, 256, 300, 16, 72} : AttnShape{2, 256, 256, 16, 72};
  const float qk_scale = 2.0f / std::sqrt(std::sqrt(static_cast<float>(s.d)));
  std::vector<Input> inputs;
  for (int call = 0; call < 2; ++call) {
    if (cross) {
      inputs.push_back(floating({s.b, s.sq, s.h, s.d}, qk_scale));
      inputs.push_back(floating({s.b, s.sk, s.h, s.d}, qk_scale));
      inputs.push_back(floating({s.b, s.sk, s.h, s.d}));
      inputs.push_back(lengths(s.b, s.sk));
    } else {
      inputs.push_back(floating({s.b, s.sq, 3, s.h, s.d}, qk_scale));
    }
  }
  Case c{"attention",
         attn_desc(s, cross ? " key_lengths, twice: plan cache hit, new data"
                            : " q/k/v views of qkv[B,S,3,H,D], twice: plan cache hit, new data"),
         inputs,
         [cross](Backend& be, const std::vector<Tensor>& in) {
           const auto call = [&](std::size_t first) {
             if (!cross) {
               const Tensor& qkv = in[first];
               return attention(be, qkv.select(2, 0), qkv.select(2, 1), qkv.select(2, 2));
             }
             AttentionParams p;
             p.key_lengths = in[first + 3];
             return attention(be, in[first], in[first + 1], in[first + 2], p);
           };
           auto* gpu = dynamic_cast<cuda::CudaBackend*>(&be);
           const std::size_t before = gpu ? gpu->cudnn_plans().size() : 0;
           const Tensor first = call(0);
           const std::size_t between = gpu ? gpu->cudnn_plans().size() : 0;
           const Tensor second = call(cross ? 4 : 1);
           if (gpu) {
             DITSERVE_CHECK(between - before <= 1, "cuDNN plan cache: the first call made ",
                            between - before, " plans; expected at most 1");
             DITSERVE_CHECK(gpu->cudnn_plans().size() == between,
                            "cuDNN plan cache: the second call of the same problem made ",
                            gpu->cudnn_plans().size() - between, " plans; expected 0");
           }
           return concat(be, {first, second}, 0);
         },
         {DType::bf16, DType::f16}};
  return c;
}

// STDiT3's temporal attention without permutes: q, k, v are blocks of one [3, B, F, P, C]
// projection, each viewed as [B, F, P * heads, D] (head stride D, frame stride P * C).
void add_stacked_temporal_attention(std::vector<Case>& cases) {
  const auto views = [](Backend& be, const std::vector<Tensor>& in) {
    return attention(be, in[0].select(0, 0), in[0].select(0, 1), in[0].select(0, 2));
  };
  // 720p x 51 frames: 3600 positions x 16 heads = 57 600 heads (below 65 535, the grid
  // limit of the direct kernel that f32 takes; one sample to bound the host reference);
  // and the CFG batch on a shard of 450 positions.
  for (const AttnShape s : {AttnShape{1, 15, 15, 3600 * 16, 72}, AttnShape{2, 15, 15, 450 * 16, 72}}) {
    cases.push_back({"attention", attn_desc(s, " (short) views of stacked qkv[3,B,F,P*heads,D]"),
                     {floating({3, s.b, s.sq, s.h, s.d}, 0.7f)}, views});
  }
}

void add_conv(std::vector<Case>& cases) {
  const float w2 = 1.0f / std::sqrt(9.0f * 32.0f);
  cases.push_back({"conv2d", "x[2,17,19,32] w[48,3,3,32] bias stride 1 pad 1",
                   {floating({2, 17, 19, 32}), floating({48, 3, 3, 32}, w2), floating({48})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return conv2d(be, in[0], in[1], in[2], {1, 1}, {1, 1});
                   }});
  cases.push_back({"conv2d", "x[2,17,19,32] w[48,3,3,32] bias stride 2 pad 1",
                   {floating({2, 17, 19, 32}), floating({48, 3, 3, 32}, w2), floating({48})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return conv2d(be, in[0], in[1], in[2], {2, 2}, {1, 1});
                   }});
  cases.push_back({"conv2d", "x[1,16,16,64] w[40,1,1,64] no bias",
                   {floating({1, 16, 16, 64}), floating({40, 1, 1, 64}, 0.125f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return conv2d(be, in[0], in[1], {}, {1, 1}, {0, 0});
                   }});
  const float w3 = 1.0f / std::sqrt(27.0f * 16.0f);
  cases.push_back({"conv3d", "x[1,5,12,14,16] w[32,3,3,3,16] bias stride (1,2,2) pad 1",
                   {floating({1, 5, 12, 14, 16}), floating({32, 3, 3, 3, 16}, w3), floating({32})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return conv3d(be, in[0], in[1], in[2], {1, 2, 2}, {1, 1, 1});
                   }});
  {
    // Wan's VAE asks for TF32 (kernels/conv.h: F32Math): 10-bit mantissa inputs, f32 sums.
    Case c{"conv3d", "x[1,4,20,24,96] w[96,3,3,3,96] bias pad (0,1,1) F32Math::tf32",
           {floating({1, 4, 20, 24, 96}), floating({96, 3, 3, 3, 96}, 0.05f), floating({96})},
           [](Backend& be, const std::vector<Tensor>& in) {
             return conv3d(be, in[0], in[1], in[2], {1, 1, 1}, {0, 1, 1}, F32Math::tf32);
           }};
    c.dtypes = {DType::f32};
    c.f32_threshold = 5e-3;
    cases.push_back(std::move(c));
  }
  cases.push_back({"conv3d", "x[2,6,9,10,16] w[24,3,3,3,16] no bias stride 1 pad (0,1,1)",
                   {floating({2, 6, 9, 10, 16}), floating({24, 3, 3, 3, 16}, w3)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return conv3d(be, in[0], in[1], {}, {1, 1, 1}, {0, 1, 1});
                   }});
}

}  // namespace

void add_math_cases(std::vector<Case>& cases) {
  add_linear(cases);
  add_linear_residual(cases);
  add_linear_stacked(cases);
  add_matmul(cases);
  add_attention(cases);
  add_attention_few_keys(cases);
  cases.push_back(cudnn_attention_twice(false));
  cases.push_back(cudnn_attention_twice(true));
  add_stacked_temporal_attention(cases);
  add_conv(cases);
}

}  // namespace ditserve::gpu_check
