// Element-wise arithmetic with broadcasting, and the embedding ops.

#include "harness.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"

namespace ditserve::gpu_check {
namespace {

void add_arithmetic(std::vector<Case>& cases) {
  cases.push_back({"add", "a[4,100,64] + b[1,100,1]",
                   {floating({4, 100, 64}), floating({1, 100, 1})},
                   [](Backend& be, const std::vector<Tensor>& in) { return add(be, in[0], in[1]); }});
  cases.push_back({"add", "a[7,333] + b[7,333] (dense, odd tail)",
                   {floating({7, 333}), floating({7, 333})},
                   [](Backend& be, const std::vector<Tensor>& in) { return add(be, in[0], in[1]); }});
  cases.push_back({"add", "a = [64,50]^T + b[64]",
                   {floating({64, 50}), floating({64})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return add(be, in[0].transpose(0, 1), in[1]);
                   }});
  cases.push_back({"mul", "a[4,100,64] * b[64]",
                   {floating({4, 100, 64}), floating({64})},
                   [](Backend& be, const std::vector<Tensor>& in) { return mul(be, in[0], in[1]); }});
  cases.push_back({"mul", "a[3,1,5,1] * b[1,4,1,6] (both broadcast)",
                   {floating({3, 1, 5, 1}), floating({1, 4, 1, 6})},
                   [](Backend& be, const std::vector<Tensor>& in) { return mul(be, in[0], in[1]); }});
  cases.push_back({"add_scaled", "a[2,16,30,40] + -0.37 * b[2,16,30,40]",
                   {floating({2, 16, 30, 40}), floating({2, 16, 30, 40})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return add_scaled(be, in[0], in[1], -0.37f);
                   }});
  cases.push_back({"add_scaled", "a[2,1,30,40] + 0.02 * b[2,16,30,40]",
                   {floating({2, 1, 30, 40}), floating({2, 16, 30, 40})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return add_scaled(be, in[0], in[1], 0.02f);
                   }});
  cases.push_back({"gated_residual", "x[2,300,1152] + gate[2,1,1152] * y[2,300,1152]",
                   {floating({2, 300, 1152}), floating({2, 1, 1152}), floating({2, 300, 1152})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return gated_residual(be, in[0], in[1], in[2]);
                   }});
  cases.push_back({"gated_residual", "x[3,50,72] + gate[72] * y[3,50,72] (all dense but gate)",
                   {floating({3, 50, 72}), floating({72}), floating({3, 50, 72})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return gated_residual(be, in[0], in[1], in[2]);
                   }});
  cases.push_back({"gated_residual", "x[5,77] + gate[5,77] * y[5,77] (dense)",
                   {floating({5, 77}), floating({5, 77}), floating({5, 77})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return gated_residual(be, in[0], in[1], in[2]);
                   }});
}

void add_embeddings(std::vector<Case>& cases) {
  cases.push_back({"embedding", "table[1000,256] ids i32[4,77]",
                   {floating({1000, 256}), ids({4, 77}, 1000, DType::i32)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return embedding(be, in[0], in[1]);
                   },
                   {DType::f32, DType::bf16},
                   /*exact=*/true});
  cases.push_back({"embedding", "table[50,33] ids i64[3,10]",
                   {floating({50, 33}), ids({3, 10}, 50, DType::i64)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return embedding(be, in[0], in[1]);
                   },
                   {DType::f32, DType::bf16},
                   /*exact=*/true});
  cases.push_back({"timestep_embedding", "t[8] in [0,1000), dim 256, cos first",
                   {fixed_f32({8}, 500.0f, 500.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return timestep_embedding(be, in[0], 256, true);
                   },
                   {DType::f32}});
  cases.push_back({"timestep_embedding", "t[5] in [0,1), dim 257, sin first, max_period 1000",
                   {fixed_f32({5}, 0.5f, 0.5f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return timestep_embedding(be, in[0], 257, false, 1000.0f);
                   },
                   {DType::f32}});
}

}  // namespace

void add_elementwise_cases(std::vector<Case>& cases) {
  add_arithmetic(cases);
  add_embeddings(cases);
}

}  // namespace ditserve::gpu_check
