#include "kernels/norm.h"

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

// Reference row normalisation over the last dim, in double. `kind` picks the formula.
enum class Kind { layer, rms };
std::vector<float> row_norm_ref(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                double eps, Kind kind) {
  const std::vector<float> v = x.to_vector_f32();
  const std::vector<float> w = weight.defined() ? weight.to_vector_f32() : std::vector<float>{};
  const std::vector<float> b = bias.defined() ? bias.to_vector_f32() : std::vector<float>{};
  const std::size_t c = static_cast<std::size_t>(x.size(-1));
  std::vector<float> out(v.size());
  for (std::size_t r = 0; r < v.size() / c; ++r) {
    const float* row = &v[r * c];
    double mean = 0, sq = 0;
    if (kind == Kind::layer) {
      for (std::size_t j = 0; j < c; ++j) mean += row[j];
      mean /= static_cast<double>(c);
    }
    for (std::size_t j = 0; j < c; ++j) sq += (row[j] - mean) * (row[j] - mean);
    const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(c) + eps);
    for (std::size_t j = 0; j < c; ++j) {
      double y = (row[j] - mean) * rstd;
      if (!w.empty()) y *= w[j];
      if (!b.empty()) y += b[j];
      out[r * c + j] = static_cast<float>(y);
    }
  }
  return out;
}

// Reference GroupNorm of channels-last x [N, ..., C], in double.
std::vector<float> group_norm_ref(const Tensor& x, int groups, const Tensor& weight,
                                  const Tensor& bias, double eps) {
  const std::vector<float> v = x.to_vector_f32();
  const std::vector<float> w = weight.to_vector_f32(), b = bias.to_vector_f32();
  const std::int64_t n = x.size(0), c = x.size(-1), s = x.numel() / (n * c), cg = c / groups;
  std::vector<float> out(v.size());
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t g = 0; g < groups; ++g) {
      double mean = 0, sq = 0;
      for (std::int64_t p = 0; p < s; ++p)
        for (std::int64_t j = g * cg; j < (g + 1) * cg; ++j) mean += v[(i * s + p) * c + j];
      mean /= static_cast<double>(s * cg);
      for (std::int64_t p = 0; p < s; ++p)
        for (std::int64_t j = g * cg; j < (g + 1) * cg; ++j) {
          const double d = v[(i * s + p) * c + j] - mean;
          sq += d * d;
        }
      const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(s * cg) + eps);
      for (std::int64_t p = 0; p < s; ++p)
        for (std::int64_t j = g * cg; j < (g + 1) * cg; ++j) {
          const std::int64_t k = (i * s + p) * c + j;
          out[k] = static_cast<float>((v[k] - mean) * rstd * w[j] + b[j]);
        }
    }
  }
  return out;
}

class NormTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu(0));
};

TEST_F(NormTest, LayerNormWithAndWithoutAffine) {
  // An offset and spread on x checks that the mean is really removed.
  const Tensor x = testing::random_tensor({3, 5, 67}, 1, 3.0f, 9.0f);
  const Tensor w = testing::random_tensor({67}, 2, 0.5f, 1.5f);
  const Tensor b = testing::random_tensor({67}, 3);
  const float eps = 1e-6f;
  const Tensor affine = layer_norm(*be, x, w, b, eps);
  EXPECT_EQ(affine.shape(), x.shape());
  EXPECT_LT(testing::relative_error(affine.to_vector_f32(), row_norm_ref(x, w, b, eps, Kind::layer)), 1e-5);
  const Tensor plain = layer_norm(*be, x, {}, {}, eps);
  EXPECT_LT(testing::relative_error(plain.to_vector_f32(), row_norm_ref(x, {}, {}, eps, Kind::layer)), 1e-5);
  const Tensor weight_only = layer_norm(*be, x, w, {}, eps);
  EXPECT_LT(testing::relative_error(weight_only.to_vector_f32(), row_norm_ref(x, w, {}, eps, Kind::layer)), 1e-5);
  const Tensor bias_only = layer_norm(*be, x, {}, b, eps);
  EXPECT_LT(testing::relative_error(bias_only.to_vector_f32(), row_norm_ref(x, {}, b, eps, Kind::layer)), 1e-5);
}

TEST_F(NormTest, LayerNormEpsMattersForConstantRows) {
  const Tensor x = Tensor::from_vector({2.0f, 2.0f, 2.0f, 1.0f, 2.0f, 3.0f}, {2, 3});
  const Tensor out = layer_norm(*be, x, {}, {}, 0.5f);
  EXPECT_EQ(out.item_f32({0, 1}), 0.0f);
  // var = 2/3: (3 - 2) / sqrt(2/3 + 0.5)
  EXPECT_NEAR(out.item_f32({1, 2}), 1.0 / std::sqrt(2.0 / 3.0 + 0.5), 1e-6);
}

TEST_F(NormTest, LayerNormOnStridedViews) {
  const Tensor base = testing::random_tensor({19, 4, 6}, 4);
  const Tensor x = base.permute({1, 2, 0});  // [4, 6, 19], normalised over the strided dim
  const Tensor w = testing::random_tensor({2, 19}, 5).select(0, 1);
  const Tensor b = testing::random_tensor({19, 2}, 6).select(1, 0);  // stride 2
  const Tensor out = layer_norm(*be, x, w, b, 1e-5f);
  EXPECT_TRUE(out.is_contiguous());
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), row_norm_ref(x, w, b, 1e-5, Kind::layer)), 1e-5);
}

TEST_F(NormTest, RmsNormWithAndWithoutWeight) {
  const Tensor x = testing::random_tensor({2, 7, 45}, 7, -3.0f, 5.0f);
  const Tensor w = testing::random_tensor({45}, 8);
  const Tensor weighted = rms_norm(*be, x, w, 1e-6f);
  EXPECT_LT(testing::relative_error(weighted.to_vector_f32(), row_norm_ref(x, w, {}, 1e-6, Kind::rms)), 1e-5);
  const Tensor strided = x.transpose(0, 1);
  const Tensor plain = rms_norm(*be, strided, {}, 1e-6f);
  EXPECT_LT(testing::relative_error(plain.to_vector_f32(), row_norm_ref(strided, {}, {}, 1e-6, Kind::rms)), 1e-5);
  // RMSNorm keeps the mean: a constant row maps to +-1, not 0.
  const Tensor constant = Tensor::from_vector({-4.0f, -4.0f}, {1, 2});
  EXPECT_NEAR(rms_norm(*be, constant, {}, 0.0f).item_f32({0, 0}), -1.0f, 1e-6);
}

TEST_F(NormTest, ModulateLayerNormBroadcastsShiftAndScale) {
  const std::int64_t batch = 3, tokens = 10, c = 24;
  const Tensor x = testing::random_tensor({batch, tokens, c}, 9, -2.0f, 4.0f);
  // adaLN: shift and scale are chunks of a [B, 1, 6C] modulation tensor (strided views).
  const Tensor mod = testing::random_tensor({batch, 1, 6 * c}, 10);
  const Tensor shift = mod.narrow(2, 0, c), scale = mod.narrow(2, c, c);
  const float eps = 1e-6f;
  const Tensor out = modulate_layer_norm(*be, x, shift, scale, eps);
  EXPECT_EQ(out.shape(), x.shape());
  const std::vector<float> normed = row_norm_ref(x, {}, {}, eps, Kind::layer);
  const std::vector<float> sh = shift.expand(x.shape()).to_vector_f32();
  const std::vector<float> sc = scale.expand(x.shape()).to_vector_f32();
  std::vector<float> expected(normed.size());
  for (std::size_t i = 0; i < normed.size(); ++i) {
    expected[i] = static_cast<float>(normed[i] * (1.0 + sc[i]) + sh[i]);
  }
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), expected), 1e-5);
}

TEST_F(NormTest, ModulateLayerNormAcceptsOtherBroadcastShapes) {
  const Tensor x = testing::random_tensor({5, 4, 9}, 11).permute({1, 0, 2});  // [4, 5, 9]
  const Tensor shift = testing::random_tensor({9}, 12);                       // per channel
  const Tensor scale = testing::random_tensor({9, 5}, 13).transpose(0, 1);    // [5, 9], stride 5
  const Tensor out = modulate_layer_norm(*be, x, shift, scale, 1e-5f);
  const std::vector<float> normed = row_norm_ref(x, {}, {}, 1e-5, Kind::layer);
  const std::vector<float> sh = shift.expand(x.shape()).to_vector_f32();
  const std::vector<float> sc = scale.expand(x.shape()).to_vector_f32();
  std::vector<float> expected(normed.size());
  for (std::size_t i = 0; i < normed.size(); ++i) expected[i] = normed[i] * (1 + sc[i]) + sh[i];
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), expected), 1e-5);
  // Zero shift and scale reduce it to a plain LayerNorm.
  const Tensor zero = Tensor::from_vector({0.0f}, {1, 1, 1});
  EXPECT_LT(testing::relative_error(modulate_layer_norm(*be, x, zero, zero, 1e-5f).to_vector_f32(),
                                    normed),
            1e-6);
}

TEST_F(NormTest, GroupNormChannelsLast) {
  const int groups = 4;
  const Tensor x = testing::random_tensor({2, 3, 5, 12}, 14, -1.0f, 3.0f);  // [N, H, W, C]
  const Tensor w = testing::random_tensor({12}, 15);
  const Tensor b = testing::random_tensor({12}, 16);
  const Tensor out = group_norm(*be, x, groups, w, b, 1e-6f);
  EXPECT_EQ(out.shape(), x.shape());
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), group_norm_ref(x, groups, w, b, 1e-6)), 1e-5);
  // One group is a LayerNorm over everything but N; C groups is an instance norm.
  for (int g : {1, 12}) {
    EXPECT_LT(testing::relative_error(group_norm(*be, x, g, w, b, 1e-6f).to_vector_f32(),
                                      group_norm_ref(x, g, w, b, 1e-6)),
              1e-5)
        << g;
  }
}

TEST_F(NormTest, GroupNormOnPermutedVideoLatent) {
  // A [N, C, T, H, W] tensor permuted to channels-last, as a VAE port might hand it over.
  const Tensor ncthw = testing::random_tensor({2, 6, 3, 4, 5}, 17);
  const Tensor x = ncthw.permute({0, 2, 3, 4, 1});
  const Tensor w = testing::random_tensor({6}, 18);
  const Tensor b = testing::random_tensor({6}, 19);
  const Tensor out = group_norm(*be, x, 3, w, b, 1e-5f);
  EXPECT_TRUE(out.is_contiguous());
  EXPECT_LT(testing::relative_error(out.to_vector_f32(), group_norm_ref(x, 3, w, b, 1e-5)), 1e-5);
  // No spatial dims at all: [N, C].
  const Tensor flat = testing::random_tensor({3, 6}, 20);
  EXPECT_LT(testing::relative_error(group_norm(*be, flat, 2, w, b, 1e-5f).to_vector_f32(),
                                    group_norm_ref(flat, 2, w, b, 1e-5)),
            1e-5);
}

TEST_F(NormTest, RejectsBadArgumentsNamingTheOp) {
  const Tensor x = testing::random_tensor({2, 3, 8}, 21);
  const Tensor w = testing::random_tensor({8}, 22);
  const Tensor w7 = testing::random_tensor({7}, 23);
  const Tensor w2d = testing::random_tensor({1, 8}, 24);
  const Tensor half = cast(*be, x, DType::bf16);
  const Tensor half_w = cast(*be, w, DType::bf16);
  const auto other = make_backend(Device::cpu(1));
  const Tensor far_x = transfer(*be, x, *other);
  const Tensor far_w = transfer(*be, w, *other);
  const Tensor scalar = Tensor::from_vector({1.0f}, {});

  const auto ln = ThrowsMessage<InvalidArgument>(HasSubstr("layer_norm"));
  EXPECT_THAT([&] { layer_norm(*be, x, w7, {}, 1e-5f); }, ln);
  EXPECT_THAT([&] { layer_norm(*be, x, {}, w2d, 1e-5f); }, ln);
  EXPECT_THAT([&] { layer_norm(*be, x, half_w, {}, 1e-5f); }, ln);
  EXPECT_THAT([&] { layer_norm(*be, half, {}, {}, 1e-5f); }, ln);
  EXPECT_THAT([&] { layer_norm(*be, far_x, {}, {}, 1e-5f); }, ln);
  EXPECT_THAT([&] { layer_norm(*be, x, far_w, {}, 1e-5f); }, ln);
  EXPECT_THAT([&] { layer_norm(*be, scalar, {}, {}, 1e-5f); }, ln);
  EXPECT_THAT([&] { layer_norm(*be, x, {}, {}, -1.0f); }, ln);
  EXPECT_THAT([&] { layer_norm(*be, Tensor(), {}, {}, 1e-5f); }, ln);

  const auto rms = ThrowsMessage<InvalidArgument>(HasSubstr("rms_norm"));
  EXPECT_THAT([&] { rms_norm(*be, x, w7, 1e-5f); }, rms);
  EXPECT_THAT([&] { rms_norm(*be, half, {}, 1e-5f); }, rms);
  EXPECT_THAT([&] { rms_norm(*be, x, far_w, 1e-5f); }, rms);
  EXPECT_THAT([&] { rms_norm(*be, cast(*be, x, DType::i32), {}, 1e-5f); }, rms);

  const auto mod = ThrowsMessage<InvalidArgument>(HasSubstr("modulate_layer_norm"));
  const Tensor ok = testing::random_tensor({2, 1, 8}, 25);
  EXPECT_THAT([&] { modulate_layer_norm(*be, x, testing::random_tensor({2, 2, 8}, 26), ok, 1e-5f); }, mod);
  EXPECT_THAT([&] { modulate_layer_norm(*be, x, ok, w7, 1e-5f); }, mod);
  // shift may broadcast to x but never grow it.
  EXPECT_THAT([&] { modulate_layer_norm(*be, x, testing::random_tensor({4, 2, 3, 8}, 27), ok, 1e-5f); }, mod);
  EXPECT_THAT([&] { modulate_layer_norm(*be, x, cast(*be, ok, DType::bf16), ok, 1e-5f); }, mod);
  EXPECT_THAT([&] { modulate_layer_norm(*be, x, ok, transfer(*be, ok, *other), 1e-5f); }, mod);
  EXPECT_THAT([&] { modulate_layer_norm(*be, x, Tensor(), ok, 1e-5f); }, mod);
  EXPECT_THAT([&] { modulate_layer_norm(*be, far_x, ok, ok, 1e-5f); }, mod);

  const auto gn = ThrowsMessage<InvalidArgument>(HasSubstr("group_norm"));
  EXPECT_THAT([&] { group_norm(*be, x, 3, w, w, 1e-5f); }, gn);   // 3 does not divide 8
  EXPECT_THAT([&] { group_norm(*be, x, 0, w, w, 1e-5f); }, gn);
  EXPECT_THAT([&] { group_norm(*be, x, -2, w, w, 1e-5f); }, gn);
  EXPECT_THAT([&] { group_norm(*be, x, 16, w, w, 1e-5f); }, gn);  // more groups than channels
  EXPECT_THAT([&] { group_norm(*be, w, 2, w, w, 1e-5f); }, gn);   // no N dim
  EXPECT_THAT([&] { group_norm(*be, x, 2, w7, w, 1e-5f); }, gn);
  EXPECT_THAT([&] { group_norm(*be, x, 2, w, Tensor(), 1e-5f); }, gn);
  EXPECT_THAT([&] { group_norm(*be, x, 2, Tensor(), w, 1e-5f); }, gn);
  EXPECT_THAT([&] { group_norm(*be, x, 2, w, far_w, 1e-5f); }, gn);
  EXPECT_THAT([&] { group_norm(*be, half, 2, half_w, half_w, 1e-5f); }, gn);
}

}  // namespace
}  // namespace ditserve
