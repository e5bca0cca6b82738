#include "kernels/elementwise.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// Element-wise reference over operands expanded to `shape`, in double.
std::vector<float> reference(const Shape& shape, const std::vector<Tensor>& operands,
                             const std::function<double(const std::vector<double>&)>& fn) {
  std::vector<std::vector<float>> values;
  for (const Tensor& t : operands) values.push_back(t.expand(shape).to_vector_f32());
  std::vector<float> out(static_cast<std::size_t>(shape_numel(shape)));
  std::vector<double> args(operands.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    for (std::size_t k = 0; k < operands.size(); ++k) args[k] = values[k][i];
    out[i] = static_cast<float>(fn(args));
  }
  return out;
}

class ElementwiseTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu(0));
};

TEST_F(ElementwiseTest, AddBroadcastsLikeNumpy) {
  const Tensor a = testing::random_tensor({2, 3, 5}, 1);
  const Tensor b = testing::random_tensor({3, 1}, 2);
  const Tensor out = add(*be, a, b);
  ASSERT_THAT(out.shape(), ElementsAre(2, 3, 5));
  EXPECT_TRUE(out.is_contiguous());
  const auto expected = reference(out.shape(), {a, b}, [](auto& v) { return v[0] + v[1]; });
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), expected), 1e-7);
  // Broadcasting is symmetric: the smaller operand may come first, and both may grow.
  const Tensor c = testing::random_tensor({4, 1, 7}, 3);
  const Tensor d = testing::random_tensor({5, 7}, 4);
  const Tensor cd = add(*be, d, c);
  ASSERT_THAT(cd.shape(), ElementsAre(4, 5, 7));
  EXPECT_LT(testing::relative_error(
                cd.to_vector_f32(),
                reference(cd.shape(), {d, c}, [](auto& v) { return v[0] + v[1]; })),
            1e-7);
}

TEST_F(ElementwiseTest, MulReadsStridedAndExpandedViews) {
  const Tensor base = testing::random_tensor({7, 3, 9}, 5);
  const Tensor a = base.permute({1, 2, 0}).narrow(1, 2, 5);  // [3, 5, 7], no unit stride
  const Tensor b = testing::random_tensor({7}, 6).unsqueeze(0).expand({5, 7});
  const Tensor out = mul(*be, a, b);
  ASSERT_THAT(out.shape(), ElementsAre(3, 5, 7));
  const auto expected = reference(out.shape(), {a, b}, [](auto& v) { return v[0] * v[1]; });
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), expected), 1e-7);
}

TEST_F(ElementwiseTest, ScalarOperands) {
  const Tensor s = Tensor::from_vector({2.5f}, {});
  const Tensor x = testing::random_tensor({3, 4}, 7);
  const Tensor out = mul(*be, s, x);
  EXPECT_THAT(out.shape(), ElementsAre(3, 4));
  EXPECT_LT(testing::relative_error(
                out.to_vector_f32(),
                reference(out.shape(), {s, x}, [](auto& v) { return v[0] * v[1]; })),
            1e-7);
  const Tensor both = add(*be, s, s);
  EXPECT_EQ(both.dim(), 0);
  EXPECT_EQ(both.item_f32({}), 5.0f);
}

TEST_F(ElementwiseTest, AddScaledIsTheSamplerUpdate) {
  const Tensor z = testing::random_tensor({3, 11, 6}, 8);
  const Tensor v = testing::random_tensor({6, 11, 3}, 9).permute({2, 1, 0});
  const float dt = -0.037f;
  const Tensor out = add_scaled(*be, z, v, dt);
  const auto expected =
      reference(out.shape(), {z, v}, [dt](auto& x) { return x[0] + double{dt} * x[1]; });
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), expected), 1e-6);
  // alpha = 0 leaves a untouched.
  EXPECT_EQ(add_scaled(*be, z, v, 0.0f).to_vector_f32(), z.to_vector_f32());
}

TEST_F(ElementwiseTest, GatedResidualBroadcastsTheGate) {
  const Tensor x = testing::random_tensor({2, 9, 13}, 10);
  // The gate of an adaLN block is one chunk of a [B, 1, 6C] modulation tensor.
  const Tensor gate = testing::random_tensor({2, 1, 6 * 13}, 11).narrow(2, 2 * 13, 13);
  const Tensor y = testing::random_tensor({2, 13, 9}, 12).transpose(1, 2);
  const Tensor out = gated_residual(*be, x, gate, y);
  ASSERT_THAT(out.shape(), ElementsAre(2, 9, 13));
  const auto expected =
      reference(out.shape(), {x, gate, y}, [](auto& v) { return v[0] + v[1] * v[2]; });
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), expected), 1e-6);
}

TEST_F(ElementwiseTest, EmptyTensorsGiveEmptyResults) {
  const Tensor a = Tensor::empty_host({0, 3}, DType::f32);
  const Tensor b = testing::random_tensor({3}, 13);
  EXPECT_THAT(add(*be, a, b).shape(), ElementsAre(0, 3));
  EXPECT_THAT(gated_residual(*be, b, a, b).shape(), ElementsAre(0, 3));
}

TEST_F(ElementwiseTest, RejectsBadArgumentsNamingTheOp) {
  const Tensor a = testing::random_tensor({2, 3}, 14);
  const Tensor bad_shape = testing::random_tensor({4}, 15);
  const Tensor half = cast(*be, a, DType::bf16);
  const Tensor ints = cast(*be, a, DType::i32);
  const auto other = make_backend(Device::cpu(1));
  const Tensor elsewhere = transfer(*be, a, *other);
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&, const Tensor&)>>>
      ops = {{"add", [&](auto& x, auto& y) { return add(*be, x, y); }},
             {"mul", [&](auto& x, auto& y) { return mul(*be, x, y); }},
             {"add_scaled", [&](auto& x, auto& y) { return add_scaled(*be, x, y, 2.0f); }},
             {"gated_residual", [&](auto& x, auto& y) { return gated_residual(*be, x, y, x); }}};
  for (const auto& [name, op] : ops) {
    const auto named = ThrowsMessage<InvalidArgument>(HasSubstr(name));
    EXPECT_THAT([&] { op(a, bad_shape); }, named) << name;
    EXPECT_THAT([&] { op(a, half); }, named) << name;
    EXPECT_THAT([&] { op(ints, ints); }, named) << name;
    EXPECT_THAT([&] { op(a, elsewhere); }, named) << name;
    EXPECT_THAT([&] { op(a, Tensor()); }, named) << name;
  }
  EXPECT_THAT([&] { gated_residual(*be, a, a, bad_shape); },
              ThrowsMessage<InvalidArgument>(HasSubstr("gated_residual")));
  EXPECT_THAT([&] { gated_residual(*be, a, a, elsewhere); },
              ThrowsMessage<InvalidArgument>(HasSubstr("gated_residual")));
}

}  // namespace
}  // namespace ditserve
