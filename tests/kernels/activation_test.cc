#include "kernels/activation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

std::vector<float> map_reference(const Tensor& x, double (*fn)(double)) {
  std::vector<float> v = x.to_vector_f32();
  for (float& e : v) e = static_cast<float>(fn(e));
  return v;
}

double gelu_exact_ref(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }
double gelu_tanh_ref(double v) {
  return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
}
double silu_ref(double v) { return v / (1.0 + std::exp(-v)); }

// Softmax over the last dim of a host tensor, in double.
std::vector<float> softmax_ref(const Tensor& x) {
  const std::vector<float> v = x.to_vector_f32();
  const std::size_t n = static_cast<std::size_t>(x.size(-1));
  std::vector<float> out(v.size());
  for (std::size_t r = 0; r < v.size() / n; ++r) {
    double max = -INFINITY, sum = 0;
    for (std::size_t j = 0; j < n; ++j) max = std::max<double>(max, v[r * n + j]);
    for (std::size_t j = 0; j < n; ++j) sum += std::exp(v[r * n + j] - max);
    for (std::size_t j = 0; j < n; ++j) out[r * n + j] = static_cast<float>(std::exp(v[r * n + j] - max) / sum);
  }
  return out;
}

class ActivationTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu(0));
};

TEST_F(ActivationTest, GeluExactMatchesErfForm) {
  const Tensor x = testing::random_tensor({7, 33}, 1, -6.0f, 6.0f);
  const Tensor out = gelu(*be, x, /*tanh_approximation=*/false);
  EXPECT_EQ(out.shape(), x.shape());
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), map_reference(x, gelu_exact_ref)), 1e-6);
  // The two forms differ measurably, so each test pins its own formula.
  EXPECT_GT(testing::relative_error(out.to_vector_f32(), map_reference(x, gelu_tanh_ref)), 1e-5);
}

TEST_F(ActivationTest, GeluTanhMatchesApproximation) {
  const Tensor x = testing::random_tensor({5, 3, 17}, 2, -6.0f, 6.0f).permute({2, 0, 1});
  const Tensor out = gelu(*be, x, /*tanh_approximation=*/true);
  EXPECT_EQ(out.shape(), x.shape());
  EXPECT_TRUE(out.is_contiguous());
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), map_reference(x, gelu_tanh_ref)), 1e-6);
}

TEST_F(ActivationTest, SiluOnStridedInput) {
  const Tensor x = testing::random_tensor({9, 20}, 3, -10.0f, 10.0f).narrow(1, 3, 13);
  const Tensor out = silu(*be, x);
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), map_reference(x, silu_ref)), 1e-6);
  EXPECT_EQ(silu(*be, Tensor::from_vector({0.0f}, {1})).item_f32({0}), 0.0f);
}

TEST_F(ActivationTest, SoftmaxRowsSumToOneAndMatchReference) {
  const Tensor x = testing::random_tensor({4, 3, 37}, 4, -8.0f, 8.0f);
  const Tensor out = softmax(*be, x);
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), softmax_ref(x)), 1e-6);
  for (std::int64_t i = 0; i < 4; ++i) {
    for (std::int64_t j = 0; j < 3; ++j) {
      double sum = 0;
      for (std::int64_t k = 0; k < 37; ++k) sum += out.item_f32({i, j, k});
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

TEST_F(ActivationTest, SoftmaxIsStableForLargeInputsAndStridedViews) {
  // exp(1000) overflows f32; a max-subtracted softmax does not.
  const Tensor x = testing::random_tensor({11, 6}, 5, 990.0f, 1010.0f).transpose(0, 1);
  const Tensor out = softmax(*be, x);
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), softmax_ref(x)), 1e-6);
  // Masked entries (-inf) get zero weight.
  const Tensor masked = Tensor::from_vector({0.0f, -INFINITY, 0.0f}, {1, 3});
  EXPECT_EQ(softmax(*be, masked).to_vector_f32(), (std::vector<float>{0.5f, 0.0f, 0.5f}));
}

TEST_F(ActivationTest, RejectsBadArgumentsNamingTheOp) {
  const Tensor x = testing::random_tensor({2, 3}, 6);
  const Tensor half = cast(*be, x, DType::bf16);
  const Tensor ints = cast(*be, x, DType::i64);
  const auto other = make_backend(Device::cpu(1));
  const Tensor elsewhere = transfer(*be, x, *other);
  for (const char* name : {"gelu", "silu", "softmax"}) {
    const auto run = [&](const Tensor& t) {
      const std::string op = name;
      if (op == "gelu") return gelu(*be, t, true);
      if (op == "silu") return silu(*be, t);
      return softmax(*be, t);
    };
    const auto named = ThrowsMessage<InvalidArgument>(HasSubstr(name));
    EXPECT_THAT([&] { run(half); }, named);
    EXPECT_THAT([&] { run(ints); }, named);
    EXPECT_THAT([&] { run(elsewhere); }, named);
    EXPECT_THAT([&] { run(Tensor()); }, named);
  }
  EXPECT_THAT([&] { softmax(*be, Tensor::from_vector({1.0f}, {})); },
              ThrowsMessage<InvalidArgument>(HasSubstr("softmax")));
  EXPECT_THAT([&] { softmax(*be, Tensor::empty_host({3, 0}, DType::f32)); },
              ThrowsMessage<InvalidArgument>(HasSubstr("softmax")));
}

}  // namespace
}  // namespace ditserve
