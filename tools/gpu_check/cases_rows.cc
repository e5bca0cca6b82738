// Normalisations, activations, softmax and rotary embedding.

#include "harness.h"
#include "kernels/activation.h"
#include "kernels/norm.h"
#include "kernels/copy.h"
#include "kernels/qk_norm.h"
#include "kernels/rope.h"

namespace ditserve::gpu_check {
namespace {

void add_norms(std::vector<Case>& cases) {
  // A mean far from zero checks that the variance is computed stably.
  cases.push_back({"layer_norm", "x[4,50,1152] (mean 3) weight+bias",
                   {floating({4, 50, 1152}, 1.0f, 3.0f), floating({1152}, 0.5f, 1.0f),
                    floating({1152}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return layer_norm(be, in[0], in[1], in[2], 1e-6f);
                   }});
  cases.push_back({"layer_norm", "x[7,33,999] no affine (unaligned rows: scalar path)",
                   {floating({7, 33, 999}, 2.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return layer_norm(be, in[0], {}, {}, 1e-5f);
                   }});
  cases.push_back({"layer_norm", "x[3,20000] weight only (row beyond the shared cache)",
                   {floating({3, 20000}, 1.0f, -2.0f), floating({20000}, 0.5f, 1.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return layer_norm(be, in[0], in[1], {}, 1e-5f);
                   }});
  cases.push_back({"layer_norm", "x[4,3072] weight+bias (a block per row)",
                   {floating({4, 3072}, 1.0f, 1.0f), floating({3072}, 0.5f, 1.0f),
                    floating({3072}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return layer_norm(be, in[0], in[1], in[2], 1e-6f);
                   }});
  cases.push_back({"layer_norm", "x = [64,40,24] transposed to [64,24,40], C=40",
                   {floating({64, 40, 24})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return layer_norm(be, in[0].transpose(1, 2), {}, {}, 1e-5f);
                   }});
  cases.push_back({"rms_norm", "x[6,77,4096] weight",
                   {floating({6, 77, 4096}), floating({4096}, 0.5f, 1.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return rms_norm(be, in[0], in[1], 1e-6f);
                   }});
  cases.push_back({"rms_norm", "x[5,333] no weight",
                   {floating({5, 333}, 3.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return rms_norm(be, in[0], {}, 1e-6f);
                   }});
  cases.push_back({"modulate_layer_norm", "x[2,300,1152] shift/scale[2,1,1152]",
                   {floating({2, 300, 1152}, 1.0f, 0.5f), floating({2, 1, 1152}),
                    floating({2, 1, 1152}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return modulate_layer_norm(be, in[0], in[1], in[2], 1e-6f);
                   }});
  cases.push_back({"modulate_layer_norm", "x[2,45,200] shift[200] scale[2,45,200]",
                   {floating({2, 45, 200}), floating({200}), floating({2, 45, 200}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return modulate_layer_norm(be, in[0], in[1], in[2], 1e-6f);
                   }});
  cases.push_back({"modulate_layer_norm", "x[2,10,4096] shift/scale[2,1,4096] (block per row)",
                   {floating({2, 10, 4096}, 1.0f, -0.5f), floating({2, 1, 4096}),
                    floating({2, 1, 4096}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return modulate_layer_norm(be, in[0], in[1], in[2], 1e-6f);
                   }});
  // Widths the register-resident kernel takes (1152: 16 lanes x 9 packs; 1536: 32 x 6),
  // with STDiT3's broadcast of per-sample shift/scale over frames and positions, a row
  // count that leaves a block partly empty, and views it must decline (unaligned lead
  // strides, a broadcast last dim).
  cases.push_back({"modulate_layer_norm", "x[2,3,37,1152] shift/scale[2,1,1,1152] expanded",
                   {floating({2, 3, 37, 1152}, 1.0f, 2.0f), floating({2, 1, 1, 1152}),
                    floating({2, 1, 1, 1152}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     const Shape shape = in[0].shape();
                     return modulate_layer_norm(be, in[0], in[1].expand(shape),
                                                in[2].expand(shape), 1e-6f);
                   }});
  cases.push_back({"modulate_layer_norm", "x[5,1536] shift/scale[5,1536] (Wan 1.3B width)",
                   {floating({5, 1536}, 1.0f, -1.0f), floating({5, 1536}),
                    floating({5, 1536}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return modulate_layer_norm(be, in[0], in[1], in[2], 1e-6f);
                   }});
  cases.push_back({"modulate_layer_norm", "x[3,1152] shift/scale = [3,1153].narrow(1,1,1152)",
                   {floating({3, 1152}), floating({3, 1153}), floating({3, 1153}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return modulate_layer_norm(be, in[0], in[1].narrow(1, 1, 1152),
                                                in[2].narrow(1, 1, 1152), 1e-6f);
                   }});
  cases.push_back({"modulate_layer_norm", "x[4,1152] shift[1] broadcast, scale[4,1152]",
                   {floating({4, 1152}), floating({1}), floating({4, 1152}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return modulate_layer_norm(be, in[0], in[1].view({1, 1}).expand({4, 1152}),
                                                in[2], 1e-6f);
                   }});
  cases.push_back({"group_norm", "x[2,5,12,20,128] 32 groups",
                   {floating({2, 5, 12, 20, 128}, 1.0f, 1.0f), floating({128}, 0.5f, 1.0f),
                    floating({128}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return group_norm(be, in[0], 32, in[1], in[2], 1e-6f);
                   }});
  cases.push_back({"group_norm", "x[1,40,40,96] 32 groups (3 channels each)",
                   {floating({1, 40, 40, 96}, 2.0f, -1.0f), floating({96}, 0.5f, 1.0f),
                    floating({96}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return group_norm(be, in[0], 32, in[1], in[2], 1e-5f);
                   }});
  cases.push_back({"group_norm", "x[1,8,64,64,128] 32 groups (many chunks)",
                   {floating({1, 8, 64, 64, 128}, 1.0f, 4.0f), floating({128}, 0.5f, 1.0f),
                    floating({128}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return group_norm(be, in[0], 32, in[1], in[2], 1e-6f);
                   }});
  cases.push_back({"group_norm", "x[3,7,7,60] 1 group",
                   {floating({3, 7, 7, 60}), floating({60}, 0.5f, 1.0f), floating({60}, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return group_norm(be, in[0], 1, in[1], in[2], 1e-6f);
                   }});
}

void add_activations(std::vector<Case>& cases) {
  for (const bool tanh_approx : {true, false}) {
    cases.push_back({"gelu", std::string(tanh_approx ? "tanh" : "exact") + " x[1000,777]",
                     {floating({1000, 777}, 4.0f)},
                     [tanh_approx](Backend& be, const std::vector<Tensor>& in) {
                       return gelu(be, in[0], tanh_approx);
                     }});
  }
  cases.push_back({"gelu", "tanh, x = [300,41]^T (non-contiguous)",
                   {floating({300, 41}, 4.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return gelu(be, in[0].transpose(0, 1), true);
                   }});
  cases.push_back({"silu", "x[1000,777]", {floating({1000, 777}, 6.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) { return silu(be, in[0]); }});
  cases.push_back({"silu", "x[13] (odd tail)", {floating({13}, 6.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) { return silu(be, in[0]); }});
  cases.push_back({"softmax", "x[64,1000] scale 5", {floating({64, 1000}, 5.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) { return softmax(be, in[0]); }});
  cases.push_back({"softmax", "x[2,16,77] scale 3", {floating({2, 16, 77}, 3.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) { return softmax(be, in[0]); }});
  cases.push_back({"softmax", "x[8,5000] scale 6 (a block per row)", {floating({8, 5000}, 6.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) { return softmax(be, in[0]); }});
  cases.push_back({"softmax", "x[4,20000] (row beyond the shared cache)",
                   {floating({4, 20000}, 8.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) { return softmax(be, in[0]); }});
}

void add_rope(std::vector<Case>& cases) {
  cases.push_back({"apply_rope", "x[2,50,4,64] 1D angles",
                   {floating({2, 50, 4, 64}), given_f32(rope_angles_1d(50, 64, 10000.0))},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return apply_rope(be, in[0], in[1]);
                   }});
  cases.push_back({"apply_rope", "x[2,10,3,6] 1D angles (pairs, no 16-byte packs)",
                   {floating({2, 10, 3, 6}), given_f32(rope_angles_1d(10, 6, 10000.0))},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return apply_rope(be, in[0], in[1]);
                   }});
  cases.push_back({"apply_rope", "x = q view of qkv[2,60,3,4,72], 3D angles grid (3,4,5)",
                   {floating({2, 60, 3, 4, 72}), given_f32(rope_angles_3d({3, 4, 5}, {24, 24, 24},
                                                                          10000.0))},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return apply_rope(be, in[0].select(2, 0), in[1]);
                   }});
  // The fused q/k RMSNorm (+ RoPE) on a copy of qkv [N, L, 3, H, D] (it may write in
  // place); q and k concatenated along dim 0.
  // `swap_tokens`: in[0] is [L, N, 3, H, D] and the op gets its [N, L, ...] transpose
  // (token offsets that are not token * stride(1)).
  const auto qk_norm = [](bool rope, bool swap_tokens = false) {
    return [rope, swap_tokens](Backend& be, const std::vector<Tensor>& in) {
      Tensor qkv = be.empty(in[0].shape(), in[0].dtype());
      copy_into(be, qkv, in[0]);
      if (swap_tokens) qkv = qkv.transpose(0, 1);
      const NormedQK qk = qk_norm_rope(be, qkv, in[1], in[2], 1e-6f, rope ? in[3] : Tensor());
      return concat(be, {contiguous(be, qk.q), contiguous(be, qk.k)}, 0);
    };
  };
  cases.push_back({"qk_norm_rope", "qkv[40,15,3,4,72] + 1D RoPE (temporal block)",
                   {floating({40, 15, 3, 4, 72}, 2.0f), floating({72}), floating({72}),
                    given_f32(rope_angles_1d(15, 72, 10000.0))},
                   qk_norm(true)});
  cases.push_back({"qk_norm_rope", "qkv[2,100,3,4,72] no RoPE (spatial block)",
                   {floating({2, 100, 3, 4, 72}, 2.0f), floating({72}), floating({72})},
                   qk_norm(false)});
  // The fused kernel's shapes: STDiT3's 16 heads (a 288-thread block per token, the
  // token count not a multiple of the 4 tokens a thread takes per iteration), a spatial
  // block at 720p (one frame of 3600 tokens per sample), 128-wide heads (blocks past the
  // 576 threads of the 56-register instance; f32 at 24 heads in groups of 8), heads so small
  // that a block holds several tokens, a 3D RoPE table, and a transposed token layout.
  cases.push_back({"qk_norm_rope", "qkv[301,15,3,16,72] + 1D RoPE (temporal, 16 heads)",
                   {floating({301, 15, 3, 16, 72}, 2.0f), floating({72}, 0.5f, 1.0f),
                    floating({72}, 0.5f, 1.0f), given_f32(rope_angles_1d(15, 72, 10000.0))},
                   qk_norm(true)});
  cases.push_back({"qk_norm_rope", "qkv[2,3600,3,16,72] no RoPE (spatial, 720p frame)",
                   {floating({2, 3600, 3, 16, 72}, 2.0f), floating({72}, 0.5f, 1.0f),
                    floating({72}, 0.5f, 1.0f)},
                   qk_norm(false)});
  cases.push_back({"qk_norm_rope", "qkv[2,333,3,16,128] + 1D RoPE (D=128; f32: 1024 threads)",
                   {floating({2, 333, 3, 16, 128}, 2.0f), floating({128}, 0.5f, 1.0f),
                    floating({128}, 0.5f, 1.0f), given_f32(rope_angles_1d(333, 128, 10000.0))},
                   qk_norm(true)});
  cases.push_back({"qk_norm_rope", "qkv[3,50,3,24,128] + 1D RoPE (bf16: 768 threads)",
                   {floating({3, 50, 3, 24, 128}, 2.0f), floating({128}, 0.5f, 1.0f),
                    floating({128}, 0.5f, 1.0f), given_f32(rope_angles_1d(50, 128, 10000.0))},
                   qk_norm(true)});
  cases.push_back({"qk_norm_rope", "qkv[5,37,3,2,16] + 1D RoPE (several tokens per block)",
                   {floating({5, 37, 3, 2, 16}, 2.0f), floating({16}, 0.5f, 1.0f),
                    floating({16}, 0.5f, 1.0f), given_f32(rope_angles_1d(37, 16, 10000.0))},
                   qk_norm(true)});
  cases.push_back({"qk_norm_rope", "qkv[2,60,3,4,72] + 3D RoPE grid (3,4,5)",
                   {floating({2, 60, 3, 4, 72}, 2.0f), floating({72}), floating({72}),
                    given_f32(rope_angles_3d({3, 4, 5}, {24, 24, 24}, 10000.0))},
                   qk_norm(true)});
  cases.push_back({"qk_norm_rope", "qkv = [15,77,3,4,72] transposed to [77,15,...] + 1D RoPE",
                   {floating({15, 77, 3, 4, 72}, 2.0f), floating({72}), floating({72}),
                    given_f32(rope_angles_1d(15, 72, 10000.0))},
                   qk_norm(true, true)});
  // STDiT3's temporal block without permutes: qkv a view [B, F, 3, P * heads, D] of three
  // [B, F, P, C] blocks ([3, B, F, P * heads, D]), tens of thousands of heads per frame,
  // each frame's heads in groups that fit a block; rotated by the frame index. Also a head
  // count whose largest fitting divisor is odd (7 x 13 heads: groups of 13), and the same
  // view with B and F swapped (token offsets that do not merge into one stride).
  const auto stacked = [](bool swap_tokens) {
    return [swap_tokens](Backend& be, const std::vector<Tensor>& in) {
      Tensor blocks = be.empty(in[0].shape(), in[0].dtype());
      copy_into(be, blocks, in[0]);
      Tensor qkv = blocks.permute({1, 2, 0, 3, 4});
      if (swap_tokens) qkv = qkv.transpose(0, 1);
      const NormedQK qk = qk_norm_rope(be, qkv, in[1], in[2], 1e-6f, in[3]);
      return concat(be, {contiguous(be, qk.q), contiguous(be, qk.k)}, 0);
    };
  };
  cases.push_back({"qk_norm_rope", "stacked qkv[3,2,15,450*16,72] as [2,15,3,7200,72] + 1D RoPE",
                   {floating({3, 2, 15, 450 * 16, 72}, 2.0f), floating({72}, 0.5f, 1.0f),
                    floating({72}, 0.5f, 1.0f), given_f32(rope_angles_1d(15, 72, 10000.0))},
                   stacked(false)});
  cases.push_back({"qk_norm_rope", "stacked qkv[3,2,9,91,72] as [2,9,3,91,72] + 1D RoPE",
                   {floating({3, 2, 9, 91, 72}, 2.0f), floating({72}, 0.5f, 1.0f),
                    floating({72}, 0.5f, 1.0f), given_f32(rope_angles_1d(9, 72, 10000.0))},
                   stacked(false)});
  cases.push_back({"qk_norm_rope", "stacked qkv[3,9,2,1600,72] as [2,9,3,1600,72] (B, F swapped)",
                   {floating({3, 9, 2, 1600, 72}, 2.0f), floating({72}, 0.5f, 1.0f),
                    floating({72}, 0.5f, 1.0f), given_f32(rope_angles_1d(9, 72, 10000.0))},
                   stacked(true)});
  cases.push_back({"qk_norm_rope", "qkv[3,10,3,2,6] + RoPE (no 16-byte packs: composed)",
                   {floating({3, 10, 3, 2, 6}, 2.0f), floating({6}), floating({6}),
                    given_f32(rope_angles_1d(10, 6, 10000.0))},
                   qk_norm(true)});
}

}  // namespace

void add_row_cases(std::vector<Case>& cases) {
  add_norms(cases);
  add_activations(cases);
  add_rope(cases);
}

}  // namespace ditserve::gpu_check
