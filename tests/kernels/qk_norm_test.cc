#include "kernels/qk_norm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/rope.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// Reference in double: q/k rows of qkv [N, L, 3, H, D] normalised (RMS over D, times the
// weight) then rotated by angles [L, D/2] (interleaved pairs), laid out [2 (q, k), N, L, H, D].
std::vector<double> qk_ref(const Tensor& qkv, const Tensor& qw, const Tensor& kw,
                           const Tensor& angles, double eps) {
  const std::int64_t n = qkv.size(0), len = qkv.size(1), h = qkv.size(3), d = qkv.size(4);
  std::vector<double> out;
  for (std::int64_t w = 0; w < 2; ++w)
    for (std::int64_t a = 0; a < n; ++a)
      for (std::int64_t l = 0; l < len; ++l)
        for (std::int64_t k = 0; k < h; ++k) {
          std::vector<double> row(static_cast<std::size_t>(d));
          for (std::int64_t j = 0; j < d; ++j) row[j] = qkv.item_f32({a, l, w, k, j});
          {
            double sq = 0;
            for (double v : row) sq += v * v;
            const double r = 1.0 / std::sqrt(sq / static_cast<double>(d) + eps);
            for (std::int64_t j = 0; j < d; ++j) row[j] *= r * (w == 0 ? qw : kw).item_f32({j});
            if (angles.defined()) {
              for (std::int64_t j = 0; j < d / 2; ++j) {
                const double t = angles.item_f32({l, j});
                const double x0 = row[2 * j], x1 = row[2 * j + 1];
                row[2 * j] = x0 * std::cos(t) - x1 * std::sin(t);
                row[2 * j + 1] = x1 * std::cos(t) + x0 * std::sin(t);
              }
            }
          }
          out.insert(out.end(), row.begin(), row.end());
        }
  return out;
}

// qk's q then k equal `want` (qk_ref's layout), and qkv's v rows are what they were before.
void expect_normed(const NormedQK& qk, const std::vector<double>& want, const Tensor& qkv,
                   const Tensor& before) {
  std::vector<float> got = qk.q.to_vector_f32();
  const std::vector<float> k = qk.k.to_vector_f32();
  got.insert(got.end(), k.begin(), k.end());
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
  EXPECT_EQ(qkv.select(2, 2).to_vector_f32(), before.select(2, 2).to_vector_f32());  // v
}

class QkNormRopeTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu(0));
};

TEST_F(QkNormRopeTest, NormalisesAndRotatesQAndKLeavingV) {
  for (const bool rope : {true, false}) {
    const Tensor qkv = testing::random_tensor({2, 5, 3, 2, 8}, 11, -2.0f, 2.0f);
    const Tensor before = Tensor::from_vector(qkv.to_vector_f32(), qkv.shape());
    const Tensor qw = testing::random_tensor({8}, 12), kw = testing::random_tensor({8}, 13);
    const Tensor angles = rope ? rope_angles_1d(5, 8, 10000.0) : Tensor();
    const std::vector<double> want = qk_ref(before, qw, kw, angles, 1e-6);
    const NormedQK qk = qk_norm_rope(*be, qkv, qw, kw, 1e-6f, angles);
    EXPECT_EQ(qk.q.shape(), (Shape{2, 5, 2, 8}));
    EXPECT_EQ(qk.k.shape(), (Shape{2, 5, 2, 8}));
    expect_normed(qk, want, qkv, before);
  }
}

TEST_F(QkNormRopeTest, TakesTheStackedViewOfATemporalBlock) {
  // STDiT3's temporal layout: q, k, v as three [B, F, P, C] blocks ([3, B, F, P * H, D]),
  // viewed as [B, F, 3, P * H, D]: many heads per frame, dim 2's stride the block size,
  // each head rotated by its frame index.
  const std::int64_t b = 2, f = 5, heads = 3 * 2, d = 8;  // P = 3 positions of 2 heads
  const Tensor stacked = testing::random_tensor({3, b, f, heads, d}, 21, -2.0f, 2.0f);
  const Tensor qkv = stacked.permute({1, 2, 0, 3, 4});
  const Tensor before = Tensor::from_vector(qkv.to_vector_f32(), qkv.shape());
  const Tensor qw = testing::random_tensor({d}, 22), kw = testing::random_tensor({d}, 23);
  const Tensor angles = rope_angles_1d(f, d, 10000.0);
  const std::vector<double> want = qk_ref(before, qw, kw, angles, 1e-6);
  const NormedQK qk = qk_norm_rope(*be, qkv, qw, kw, 1e-6f, angles);
  expect_normed(qk, want, qkv, before);
}

TEST_F(QkNormRopeTest, RejectsBadShapesNamingTheTensor) {
  const Tensor qkv = testing::random_tensor({2, 5, 3, 2, 8}, 1);
  const Tensor w = testing::random_tensor({8}, 2);
  EXPECT_THAT([&] { qk_norm_rope(*be, testing::random_tensor({2, 5, 2, 2, 8}, 3), w, w, 1e-6f, Tensor()); },
              ThrowsMessage<InvalidArgument>(HasSubstr("qkv")));
  EXPECT_THAT([&] { qk_norm_rope(*be, qkv, testing::random_tensor({6}, 4), w, 1e-6f, Tensor()); },
              ThrowsMessage<InvalidArgument>(HasSubstr("weight")));
  EXPECT_THAT([&] { qk_norm_rope(*be, qkv, w, w, 1e-6f, rope_angles_1d(4, 8, 10000.0)); },
              ThrowsMessage<InvalidArgument>(HasSubstr("angles")));
}

}  // namespace
}  // namespace ditserve
