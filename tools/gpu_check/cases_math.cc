// GEMM, batched matmul, attention and convolution cases.

#include <cmath>
#include <sstream>

#include "harness.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/gemm.h"

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
  // Short sequences (STDiT3's temporal attention): the warp-per-(batch, head) kernel in
  // 16-bit; the longest it takes (32), head dims 64 and 72 (128 goes to cuDNN), Sq != Sk.
  for (const AttnShape s : {AttnShape{96, 15, 15, 4, 72}, AttnShape{8, 32, 32, 2, 64}, AttnShape{4, 20, 20, 2, 128},
                            AttnShape{6, 7, 19, 3, 64}, AttnShape{5, 1, 1, 2, 72}}) {
    cases.push_back({"attention", attn_desc(s, " (short)"),
                     {qk(s, s.sq), qk(s, s.sk), floating({s.b, s.sk, s.h, s.d})},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return attention(be, in[0], in[1], in[2]);
                     }});
  }
  {
    const AttnShape s{64, 30, 30, 4, 72};
    cases.push_back({"attention", attn_desc(s, " (short) q/k/v views of qkv[B,S,3,H,D]"),
                     {floating({s.b, s.sq, 3, s.h, s.d}, 0.7f)},
                     [](Backend& be, const std::vector<Tensor>& in) {
                       return attention(be, in[0].select(2, 0), in[0].select(2, 1),
                                        in[0].select(2, 2));
                     }});
  }
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
  add_matmul(cases);
  add_attention(cases);
  add_conv(cases);
}

}  // namespace ditserve::gpu_check
