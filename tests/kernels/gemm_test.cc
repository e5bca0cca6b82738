#include "kernels/gemm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numbers>

#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

double activate(Activation act, double v) {
  switch (act) {
    case Activation::none:
      return v;
    case Activation::gelu_tanh:
      return 0.5 * v *
             (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (v + 0.044715 * v * v * v)));
    case Activation::gelu_exact:
      return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    case Activation::silu:
      return v / (1 + std::exp(-v));
  }
  return v;
}

// act(x @ w^T + bias) with double accumulation; x any host view [..., K].
std::vector<float> reference_linear(const Tensor& x, const Tensor& w, const Tensor& bias,
                                    Activation act) {
  const std::vector<float> xv = x.to_vector_f32(), wv = w.to_vector_f32();
  const std::vector<float> bv = bias.defined() ? bias.to_vector_f32() : std::vector<float>();
  const std::int64_t k = x.size(-1), n = w.size(0), m = x.numel() / k;
  std::vector<float> out(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double sum = bv.empty() ? 0.0 : bv[j];
      for (std::int64_t p = 0; p < k; ++p) sum += double(xv[i * k + p]) * wv[j * k + p];
      out[i * n + j] = static_cast<float>(activate(act, sum));
    }
  }
  return out;
}

// a [..., M, K] @ b [..., K, N] (b's batch dims equal to a's, or absent).
std::vector<float> reference_matmul(const Tensor& a, const Tensor& b) {
  const std::vector<float> av = a.to_vector_f32(), bv = b.to_vector_f32();
  const std::int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const std::int64_t batch = a.numel() / (m * k);
  const bool shared = b.dim() == 2;
  std::vector<float> out(static_cast<std::size_t>(batch * m * n));
  for (std::int64_t t = 0; t < batch; ++t) {
    const float* at = av.data() + t * m * k;
    const float* bt = bv.data() + (shared ? 0 : t * k * n);
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (std::int64_t p = 0; p < k; ++p) sum += double(at[i * k + p]) * bt[p * n + j];
        out[(t * m + i) * n + j] = static_cast<float>(sum);
      }
    }
  }
  return out;
}

class GemmTest : public ::testing::Test {
 protected:
  // Each call must throw InvalidArgument naming the op and containing its detail.
  void expect_rejected(const std::string& op,
                       const std::vector<std::pair<std::string, std::function<void()>>>& calls) {
    for (const auto& [detail, call] : calls) {
      EXPECT_THAT(call,
                  ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(op + ":"), HasSubstr(detail))));
    }
  }

  std::unique_ptr<Backend> be = make_backend(Device::cpu(0));
};

TEST_F(GemmTest, LinearMatchesReferenceForEveryActivation) {
  const Tensor x = testing::random_tensor({2, 7, 13}, 1);
  const Tensor w = testing::random_tensor({5, 13}, 2);
  const Tensor bias = testing::random_tensor({5}, 3);
  for (Activation act :
       {Activation::none, Activation::gelu_tanh, Activation::gelu_exact, Activation::silu}) {
    for (const Tensor& b : {bias, Tensor()}) {
      const Tensor y = linear(*be, x, w, b, act);
      EXPECT_EQ(y.shape(), (Shape{2, 7, 5}));
      EXPECT_TRUE(y.is_contiguous());
      EXPECT_LT(testing::relative_error(y.to_vector_f32(), reference_linear(x, w, b, act)), 1e-5)
          << "activation " << static_cast<int>(act) << (b.defined() ? " with" : " without")
          << " bias";
    }
  }
}

TEST_F(GemmTest, LinearActivationsAreTheNamedFunctions) {
  // One input, identity weight: y = act(x + bias) element-wise, checked at known points.
  const Tensor x = Tensor::from_vector({-1.0f, 0.0f, 2.0f}, {3});
  const Tensor eye = Tensor::from_vector({1, 0, 0, 0, 1, 0, 0, 0, 1}, {3, 3});
  const Tensor bias = Tensor::from_vector({0.0f, 0.5f, 0.0f}, {3});
  const auto silu = linear(*be, x, eye, bias, Activation::silu).to_vector_f32();
  EXPECT_NEAR(silu[0], -1.0 / (1.0 + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(silu[1], 0.5 / (1.0 + std::exp(-0.5)), 1e-6);
  const auto gelu = linear(*be, x, eye, {}, Activation::gelu_exact).to_vector_f32();
  EXPECT_NEAR(gelu[0], -0.15865525393145707, 1e-6);
  EXPECT_NEAR(gelu[2], 1.9544997361036416, 1e-6);
  const auto tanh = linear(*be, x, eye, {}, Activation::gelu_tanh).to_vector_f32();
  EXPECT_NEAR(tanh[0], -0.15880800939172324, 1e-6);
}

TEST_F(GemmTest, LinearReadsStridedAndBroadcastInputs) {
  const Tensor w = testing::random_tensor({6, 13}, 4);
  const Tensor bias = testing::random_tensor({6}, 5);
  const Tensor wide = testing::random_tensor({3, 4, 20}, 6);
  const Tensor base = testing::random_tensor({4, 3, 13}, 7);
  const Tensor cols = testing::random_tensor({13, 9}, 8);
  const Tensor row = testing::random_tensor({1, 13}, 9);
  const std::vector<std::pair<std::string, Tensor>> views = {
      {"narrowed features (row stride 20)", wide.narrow(2, 3, 13)},
      {"permuted leading dims (no single row stride)", base.permute({1, 0, 2})},
      {"transposed (feature stride 9)", cols.transpose(0, 1)},
      {"broadcast row (row stride 0)", row.expand({5, 13})},
      {"single vector", testing::random_tensor({13}, 10)},
      {"selected rows", base.select(1, 2)},
  };
  for (const auto& [name, x] : views) {
    const Tensor y = linear(*be, x, w, bias, Activation::gelu_tanh);
    Shape want = x.shape();
    want.back() = 6;
    EXPECT_EQ(y.shape(), want) << name;
    EXPECT_LT(testing::relative_error(y.to_vector_f32(),
                                      reference_linear(x, w, bias, Activation::gelu_tanh)),
              1e-5)
        << name;
  }
}

TEST_F(GemmTest, LinearOfNoRowsIsEmpty) {
  const Tensor y =
      linear(*be, Tensor::empty_host({0, 4}, DType::f32), testing::random_tensor({3, 4}, 11));
  EXPECT_EQ(y.shape(), (Shape{0, 3}));
}

TEST_F(GemmTest, LinearRejectsBadArguments) {
  const Tensor x = testing::random_tensor({7, 13}, 12);
  const Tensor w = testing::random_tensor({5, 13}, 13);
  const auto other = make_backend(Device::cpu(1));
  const Tensor empty_x = Tensor::empty_host({3, 0}, DType::f32);
  const Tensor w_k12 = testing::random_tensor({5, 12}, 1);
  const Tensor w_transposed = testing::random_tensor({13, 5}, 2).transpose(0, 1);
  const Tensor b6 = testing::random_tensor({6}, 3), b1x5 = testing::random_tensor({1, 5}, 4);
  expect_rejected(
      "linear",
      {
          {"has K = 13", [&] { linear(*be, x, w_k12); }},
          {"expected [N, K]", [&] { linear(*be, x, w.unsqueeze(0)); }},
          {"expected [5]", [&] { linear(*be, x, w, b6); }},
          {"expected [5]", [&] { linear(*be, x, w, b1x5); }},
          {"must be contiguous", [&] { linear(*be, x, w_transposed); }},
          {"x is bf16", [&] { linear(*be, cast(*be, x, DType::bf16), w); }},
          {"bias is f16", [&] { linear(*be, x, w, cast(*be, w.select(1, 0), DType::f16)); }},
          {"cpu:1", [&] { linear(*be, x, transfer(*be, w, *other)); }},
          {"w is undefined", [&] { linear(*be, x, Tensor()); }},
          {"empty feature dim", [&] { linear(*be, empty_x, empty_x.narrow(0, 0, 2)); }},
      });
}

// linear_residual's specification: the ops it replaces, one after the other.
Tensor composed_linear_residual(Backend& be, const Tensor& x, const Tensor& w, const Tensor& bias,
                                const Tensor& residual, const Tensor& gate) {
  const Tensor y = linear(be, x, w, bias);
  if (!gate.defined()) return add(be, residual, y);
  Shape gate_shape(static_cast<std::size_t>(residual.dim()), 1);
  gate_shape.front() = gate.size(0);
  gate_shape.back() = gate.size(1);
  return gated_residual(be, residual, contiguous(be, gate).view(gate_shape), y);
}

TEST_F(GemmTest, LinearResidualEqualsLinearThenGatedResidual) {
  // Non-square w [5, 13]; samples of 7 rows; gates that differ per sample and channel.
  for (const std::int64_t samples : {1, 2}) {
    const Tensor x = testing::random_tensor({samples, 7, 13}, 50);
    const Tensor w = testing::random_tensor({5, 13}, 51);
    const Tensor bias = testing::random_tensor({5}, 52);
    const Tensor residual = testing::random_tensor({samples, 7, 5}, 53);
    const Tensor gate = testing::random_tensor({samples, 5}, 54, -2.0f, 2.0f);
    const std::vector<float> residual_before = residual.to_vector_f32();
    for (const Tensor& g : {gate, Tensor()}) {
      for (const Tensor& b : {bias, Tensor()}) {
        const Tensor out = linear_residual(*be, x, w, b, residual, g);
        const std::string what = std::to_string(samples) + " sample(s)" +
                                 (g.defined() ? ", gate" : ", no gate") +
                                 (b.defined() ? ", bias" : ", no bias");
        EXPECT_EQ(out.shape(), (Shape{samples, 7, 5})) << what;
        EXPECT_TRUE(out.is_contiguous()) << what;
        EXPECT_LT(testing::relative_error(out.to_vector_f32(),
                                          composed_linear_residual(*be, x, w, b, residual, g)
                                              .to_vector_f32()),
                  1e-6)
            << what;
      }
    }
    EXPECT_EQ(residual.to_vector_f32(), residual_before) << "the residual is an input only";
  }
}

TEST_F(GemmTest, LinearResidualAppliesEachSamplesGateToItsOwnRows) {
  // w = I and no bias: out[s, i, j] = residual[s, i, j] + gate[s, j] * x[s, i, j].
  const Tensor x = testing::iota_tensor({2, 3, 2});
  const Tensor eye = Tensor::from_vector({1, 0, 0, 1}, {2, 2});
  const Tensor residual = Tensor::from_vector(std::vector<float>(12, 100.0f), {2, 3, 2});
  const Tensor gate = Tensor::from_vector({1, 10, -1, 0.5f}, {2, 2});
  EXPECT_EQ(linear_residual(*be, x, eye, {}, residual, gate).to_vector_f32(),
            (std::vector<float>{100, 110, 102, 130, 104, 150,  //
                                94, 103.5f, 92, 104.5f, 90, 105.5f}));
}

TEST_F(GemmTest, LinearResidualReadsStridedOperands) {
  // Sample dim first in every operand, but none of them contiguous: x's leading dims
  // permuted, the residual a narrow of wider rows, the gate one row of a [B, 6, N] table.
  const Tensor x = testing::random_tensor({4, 2, 3, 13}, 60).permute({1, 0, 2, 3});
  const Tensor w = testing::random_tensor({5, 13}, 61);
  const Tensor bias = testing::random_tensor({5}, 62);
  const Tensor residual = testing::random_tensor({2, 4, 3, 9}, 63).narrow(3, 2, 5);
  const Tensor gate = testing::random_tensor({2, 6, 5}, 64).select(1, 2);
  for (const Tensor& g : {gate, Tensor()}) {
    const Tensor out = linear_residual(*be, x, w, bias, residual, g);
    EXPECT_EQ(out.shape(), (Shape{2, 4, 3, 5}));
    EXPECT_LT(testing::relative_error(
                  out.to_vector_f32(),
                  composed_linear_residual(*be, x, w, bias, residual, g).to_vector_f32()),
              1e-6)
        << (g.defined() ? "gate" : "no gate");
  }
}

TEST_F(GemmTest, LinearResidualOfNoRowsIsEmpty) {
  const Tensor out = linear_residual(*be, Tensor::empty_host({2, 0, 4}, DType::f32),
                                     testing::random_tensor({3, 4}, 65), {},
                                     Tensor::empty_host({2, 0, 3}, DType::f32),
                                     testing::random_tensor({2, 3}, 66));
  EXPECT_EQ(out.shape(), (Shape{2, 0, 3}));
}

TEST_F(GemmTest, LinearResidualRejectsBadArguments) {
  const Tensor x = testing::random_tensor({2, 7, 13}, 70);
  const Tensor w = testing::random_tensor({5, 13}, 71);
  const Tensor residual = testing::random_tensor({2, 7, 5}, 72);
  const Tensor gate = testing::random_tensor({2, 5}, 73);
  const Tensor w_k12 = testing::random_tensor({5, 12}, 74);
  const auto other = make_backend(Device::cpu(1));
  expect_rejected(
      "linear_residual",
      {
          {"has K = 13", [&] { linear_residual(*be, x, w_k12, {}, residual); }},
          {"residual is f32[2, 7, 4]",
           [&] { linear_residual(*be, x, w, {}, residual.narrow(2, 0, 4)); }},
          {"expected [2, 7, 5]",
           [&] { linear_residual(*be, x, w, {}, residual.unsqueeze(0)); }},
          {"residual is undefined", [&] { linear_residual(*be, x, w, {}, Tensor()); }},
          {"residual is bf16",
           [&] { linear_residual(*be, x, w, {}, cast(*be, residual, DType::bf16)); }},
          {"gate is f32[2, 4]",
           [&] { linear_residual(*be, x, w, {}, residual, gate.narrow(1, 0, 4)); }},
          {"gate is f32[1, 5]",
           [&] { linear_residual(*be, x, w, {}, residual, gate.narrow(0, 0, 1)); }},
          {"expected [2, 5]",
           [&] { linear_residual(*be, x, w, {}, residual, gate.unsqueeze(1)); }},
          {"needs a sample dim",
           [&] {
             linear_residual(*be, x.select(0, 0).select(0, 0), w, {},
                             residual.select(0, 0).select(0, 0), gate.select(0, 0));
           }},
          {"cpu:1", [&] { linear_residual(*be, x, w, {}, residual, transfer(*be, gate, *other)); }},
          {"expected [5]",
           [&] { linear_residual(*be, x, w, testing::random_tensor({6}, 75), residual); }},
      });
}

// linear_stacked's specification as a plain loop: out[g, i, j] = sum_p x[i, p] w[g N + j, p]
// + bias[g N + j], in double; x any host view [..., K] (rows in its logical order).
std::vector<float> reference_stacked(const Tensor& x, const Tensor& w, const Tensor& bias,
                                     std::int64_t groups) {
  const std::vector<float> xv = x.to_vector_f32(), wv = w.to_vector_f32();
  const std::vector<float> bv = bias.defined() ? bias.to_vector_f32() : std::vector<float>();
  const std::int64_t k = x.size(-1), n = w.size(0) / groups, m = x.numel() / k;
  std::vector<float> out(static_cast<std::size_t>(groups * m * n));
  for (std::int64_t g = 0; g < groups; ++g) {
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t row = g * n + j;
        double sum = bv.empty() ? 0.0 : bv[row];
        for (std::int64_t p = 0; p < k; ++p) sum += double(xv[i * k + p]) * wv[row * k + p];
        out[(g * m + i) * n + j] = static_cast<float>(sum);
      }
    }
  }
  return out;
}

TEST_F(GemmTest, LinearStackedWritesEachBlockOfOutputsAsItsOwnTensor) {
  // Three blocks (q, k, v) of 5 outputs over x [2, 3, 7, 13]; M = 42 rows.
  const Tensor x = testing::random_tensor({2, 3, 7, 13}, 80);
  const Tensor w = testing::random_tensor({15, 13}, 81);
  const Tensor bias = testing::random_tensor({15}, 82);
  for (const Tensor& b : {bias, Tensor()}) {
    const std::string what = b.defined() ? "bias" : "no bias";
    const Tensor out = linear_stacked(*be, x, w, b, 3);
    EXPECT_EQ(out.shape(), (Shape{3, 2, 3, 7, 5})) << what;
    EXPECT_TRUE(out.is_contiguous()) << what;
    EXPECT_LT(testing::relative_error(out.to_vector_f32(), reference_stacked(x, w, b, 3)), 1e-6)
        << what;
    // The same numbers as linear() with its output columns regrouped.
    const Tensor regrouped =
        contiguous(*be, linear(*be, x, w, b).view({2, 3, 7, 3, 5}).permute({3, 0, 1, 2, 4}));
    EXPECT_LT(testing::relative_error(out, regrouped), 1e-6) << what;
  }
  // One group is linear(); a strided x (narrowed features, permuted leading dims) is read
  // in its logical row order.
  const Tensor wide = testing::random_tensor({4, 6, 20}, 83).narrow(2, 4, 13).permute({1, 0, 2});
  EXPECT_LT(testing::relative_error(linear_stacked(*be, wide, w, bias, 1).to_vector_f32(),
                                    reference_linear(wide, w, bias, Activation::none)),
            1e-6);
  EXPECT_LT(testing::relative_error(linear_stacked(*be, wide, w, bias, 5).to_vector_f32(),
                                    reference_stacked(wide, w, bias, 5)),
            1e-6);
  EXPECT_EQ(linear_stacked(*be, Tensor::empty_host({0, 13}, DType::f32), w, bias, 3).shape(),
            (Shape{3, 0, 5}));
}

TEST_F(GemmTest, LinearStackedRejectsBadArguments) {
  const Tensor x = testing::random_tensor({7, 13}, 84);
  const Tensor w = testing::random_tensor({15, 13}, 85);
  expect_rejected(
      "linear_stacked",
      {
          {"groups = 2 must be >= 1 and divide the 15 output rows",
           [&] { linear_stacked(*be, x, w, {}, 2); }},
          {"groups = 0", [&] { linear_stacked(*be, x, w, {}, 0); }},
          {"has K = 13", [&] { linear_stacked(*be, x, testing::random_tensor({15, 12}, 86), {}, 3); }},
          {"expected [15]",
           [&] { linear_stacked(*be, x, w, testing::random_tensor({5}, 87), 3); }},
      });
}

TEST_F(GemmTest, MatmulMatchesReferenceOnOddSizes) {
  const Tensor a = testing::random_tensor({3, 7, 13}, 20);
  const Tensor b = testing::random_tensor({3, 13, 5}, 21);
  const Tensor c = matmul(*be, a, b);
  EXPECT_EQ(c.shape(), (Shape{3, 7, 5}));
  EXPECT_LT(testing::relative_error(c.to_vector_f32(), reference_matmul(a, b)), 1e-5);

  const Tensor a2 = testing::random_tensor({7, 13}, 22), b2 = testing::random_tensor({13, 5}, 23);
  EXPECT_LT(testing::relative_error(matmul(*be, a2, b2).to_vector_f32(), reference_matmul(a2, b2)),
            1e-5);
}

TEST_F(GemmTest, MatmulSharesATwoDimensionalRightOperand) {
  const Tensor a = testing::random_tensor({2, 3, 7, 13}, 24);
  const Tensor b = testing::random_tensor({13, 5}, 25);
  const Tensor c = matmul(*be, a, b);
  EXPECT_EQ(c.shape(), (Shape{2, 3, 7, 5}));
  EXPECT_LT(testing::relative_error(c.to_vector_f32(), reference_matmul(a, b)), 1e-5);
}

TEST_F(GemmTest, MatmulReadsTransposedPermutedAndStridedViews) {
  const Tensor at = testing::random_tensor({3, 13, 7}, 26);  // a^T per batch
  const Tensor bt = testing::random_tensor({3, 5, 13}, 27);  // b^T per batch
  const Tensor apad = testing::random_tensor({3, 7, 13, 2}, 28);
  const Tensor bperm = testing::random_tensor({13, 3, 5}, 29);
  const Tensor abatch = testing::random_tensor({7, 2, 3, 13}, 30);
  const Tensor bbatch = testing::random_tensor({3, 2, 13, 5}, 31);
  struct Case {
    std::string name;
    Tensor a, b;
  };
  const std::vector<Case> cases = {
      {"both transposed", at.transpose(1, 2), bt.transpose(1, 2)},
      {"a without a unit stride", apad.select(3, 1), bt.transpose(1, 2)},
      {"b batch dim in the middle", at.transpose(1, 2), bperm.permute({1, 0, 2})},
      {"shared transposed b", at.transpose(1, 2), bt.select(0, 1).transpose(0, 1)},
      {"batch dims that do not merge", abatch.permute({1, 2, 0, 3}), bbatch.permute({1, 0, 2, 3})},
      {"broadcast rows of a", testing::random_tensor({3, 1, 13}, 32).expand({3, 7, 13}),
       bt.transpose(1, 2)},
  };
  for (const Case& c : cases) {
    const Tensor out = matmul(*be, c.a, c.b);
    EXPECT_TRUE(out.is_contiguous()) << c.name;
    EXPECT_LT(testing::relative_error(out.to_vector_f32(), reference_matmul(c.a, c.b)), 1e-5)
        << c.name;
  }
}

TEST_F(GemmTest, MatmulRejectsBadArguments) {
  const Tensor a = testing::random_tensor({3, 7, 13}, 40);
  const Tensor b = testing::random_tensor({3, 13, 5}, 41);
  const auto other = make_backend(Device::cpu(1));
  const Tensor b_k12 = testing::random_tensor({3, 12, 5}, 1);
  const Tensor b_batch2 = testing::random_tensor({2, 13, 5}, 2);
  const Tensor vector = testing::random_tensor({13}, 3);
  expect_rejected("matmul", {
                                {"has K = 13", [&] { matmul(*be, a, b_k12); }},
                                {"batch dims", [&] { matmul(*be, a, b_batch2); }},
                                {"batch dims", [&] { matmul(*be, a.select(0, 0), b); }},
                                {"batches of matrices", [&] { matmul(*be, vector, b); }},
                                {"b is bf16", [&] { matmul(*be, a, cast(*be, b, DType::bf16)); }},
                                {"cpu:1", [&] { matmul(*be, transfer(*be, a, *other), b); }},
                                {"a is i32", [&] { matmul(*be, cast(*be, a, DType::i32), b); }},
                                {"empty contraction",
                                 [&] { matmul(*be, a.narrow(2, 0, 0), b.narrow(1, 0, 0)); }},
                            });
}

}  // namespace
}  // namespace ditserve
