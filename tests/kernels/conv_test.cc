#include "kernels/conv.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// Direct 3-D convolution, channels-last, zero padding, double accumulation.
// x [N, D, H, W, C], w [O, kd, kh, kw, C]; returns [N, Do, Ho, Wo, O] row-major.
std::vector<float> reference_conv3d(const Tensor& x, const Tensor& w, const Tensor& bias,
                                    std::array<int, 3> s, std::array<int, 3> p, Shape* out_shape) {
  const std::vector<float> xv = x.to_vector_f32(), wv = w.to_vector_f32();
  const std::int64_t n = x.size(0), d = x.size(1), h = x.size(2), wd = x.size(3), c = x.size(4);
  const std::int64_t o = w.size(0), kd = w.size(1), kh = w.size(2), kw = w.size(3);
  const std::int64_t od = (d + 2 * p[0] - kd) / s[0] + 1, oh = (h + 2 * p[1] - kh) / s[1] + 1,
                     ow = (wd + 2 * p[2] - kw) / s[2] + 1;
  *out_shape = {n, od, oh, ow, o};
  std::vector<float> out;
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t z = 0; z < od; ++z)
      for (std::int64_t y = 0; y < oh; ++y)
        for (std::int64_t xx = 0; xx < ow; ++xx)
          for (std::int64_t f = 0; f < o; ++f) {
            double sum = bias.defined() ? bias.item_f32({f}) : 0.0;
            for (std::int64_t a = 0; a < kd; ++a)
              for (std::int64_t i = 0; i < kh; ++i)
                for (std::int64_t j = 0; j < kw; ++j) {
                  const std::int64_t iz = z * s[0] - p[0] + a, iy = y * s[1] - p[1] + i,
                                     ix = xx * s[2] - p[2] + j;
                  if (iz < 0 || iz >= d || iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                  for (std::int64_t ch = 0; ch < c; ++ch) {
                    sum += double(xv[(((b * d + iz) * h + iy) * wd + ix) * c + ch]) *
                           wv[(((f * kd + a) * kh + i) * kw + j) * c + ch];
                  }
                }
            out.push_back(static_cast<float>(sum));
          }
  return out;
}

class ConvTest : public ::testing::Test {
 protected:
  void expect_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias,
                     std::array<int, 2> stride, std::array<int, 2> padding,
                     const std::string& name) {
    Shape want_shape;
    const std::vector<float> want =
        reference_conv3d(x.unsqueeze(1), w.unsqueeze(1), bias, {1, stride[0], stride[1]},
                         {0, padding[0], padding[1]}, &want_shape);
    want_shape.erase(want_shape.begin() + 1);
    const Tensor y = conv2d(*be, x, w, bias, stride, padding);
    EXPECT_EQ(y.shape(), want_shape) << name;
    EXPECT_LT(testing::relative_error(y.to_vector_f32(), want), 1e-5) << name;
  }
  void expect_conv3d(const Tensor& x, const Tensor& w, const Tensor& bias,
                     std::array<int, 3> stride, std::array<int, 3> padding,
                     const std::string& name) {
    Shape want_shape;
    const std::vector<float> want = reference_conv3d(x, w, bias, stride, padding, &want_shape);
    const Tensor y = conv3d(*be, x, w, bias, stride, padding);
    EXPECT_EQ(y.shape(), want_shape) << name;
    EXPECT_LT(testing::relative_error(y.to_vector_f32(), want), 1e-5) << name;
  }
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

TEST_F(ConvTest, Conv2dMatchesReferenceWithStrideAndPadding) {
  const Tensor x = testing::random_tensor({2, 9, 7, 5}, 1);
  const Tensor w3 = testing::random_tensor({4, 3, 3, 5}, 2);
  const Tensor bias = testing::random_tensor({4}, 3);
  expect_conv2d(x, w3, bias, {1, 1}, {1, 1}, "3x3 same padding");
  expect_conv2d(x, w3, {}, {2, 3}, {0, 2}, "3x3 stride 2x3, padding 0x2, no bias");
  expect_conv2d(x, testing::random_tensor({3, 2, 4, 5}, 4), {}, {2, 1}, {1, 0}, "2x4 kernel");
  expect_conv2d(x, testing::random_tensor({4, 1, 1, 5}, 5), bias, {1, 1}, {0, 0}, "1x1 kernel");
  expect_conv2d(x, testing::random_tensor({4, 1, 1, 5}, 6), bias, {2, 2}, {1, 1},
                "strided, padded 1x1 kernel");
  expect_conv2d(x, testing::random_tensor({4, 9, 7, 5}, 7), bias, {1, 1}, {0, 0},
                "kernel as large as the input");
}

TEST_F(ConvTest, Conv2dReadsNonContiguousInputs) {
  // PyTorch-layout tensors permuted to channels-last are views, not copies.
  const Tensor x = testing::random_tensor({2, 5, 9, 7}, 8).permute({0, 2, 3, 1});
  const Tensor w = testing::random_tensor({4, 5, 3, 3}, 9).permute({0, 2, 3, 1});
  const Tensor bias = testing::random_tensor({8}, 10).narrow(0, 2, 4);
  expect_conv2d(x, w, bias, {2, 2}, {1, 1}, "permuted x and w, narrowed bias");
}

TEST_F(ConvTest, Conv3dMatchesReferenceWithStrideAndPadding) {
  const Tensor x = testing::random_tensor({2, 5, 6, 7, 3}, 11);
  const Tensor bias = testing::random_tensor({4}, 12);
  expect_conv3d(x, testing::random_tensor({4, 3, 3, 3, 3}, 13), bias, {1, 1, 1}, {1, 1, 1},
                "3x3x3 same padding");
  expect_conv3d(x, testing::random_tensor({4, 3, 2, 3, 3}, 14), {}, {2, 1, 3}, {0, 1, 2},
                "mixed strides and padding");
  expect_conv3d(x, testing::random_tensor({4, 1, 1, 1, 3}, 15), bias, {1, 1, 1}, {0, 0, 0},
                "pointwise");
  expect_conv3d(x.permute({0, 1, 3, 2, 4}), testing::random_tensor({4, 3, 1, 1, 3}, 16), bias,
                {1, 1, 1}, {2, 0, 0}, "temporal kernel on a permuted input");
}

TEST_F(ConvTest, LargeConvolutionsAreProcessedInBlocks) {
  // 3200 output positions x 1728 patch entries exceed the kernel's im2col budget (2^22).
  const Tensor x = testing::random_tensor({1, 8, 20, 20, 64}, 17);
  const Tensor w = testing::random_tensor({4, 3, 3, 3, 64}, 18);
  expect_conv3d(x, w, testing::random_tensor({4}, 19), {1, 1, 1}, {1, 1, 1}, "blocked");
}

TEST_F(ConvTest, RejectsBadArguments) {
  const Tensor x = testing::random_tensor({2, 9, 7, 5}, 20);
  const Tensor w = testing::random_tensor({4, 3, 3, 5}, 21);
  const auto other = make_backend(Device::cpu(1));
  const Tensor x3 = x.unsqueeze(1), w3 = w.unsqueeze(1);
  const std::array<int, 2> one{1, 1}, zero{0, 0}, zero_stride{0, 1}, negative{-1, 1};
  const std::array<int, 3> ones3{1, 1, 1}, no_depth_padding{0, 1, 1};
  const auto conv = [&](const Tensor& xx, const Tensor& ww, const Tensor& b = {},
                        std::array<int, 2> stride = {1, 1}, std::array<int, 2> padding = {1, 1}) {
    conv2d(*be, xx, ww, b, stride, padding);
  };
  expect_rejected("conv2d",
                  {
                      {"5 channels", [&] { conv(x, w.narrow(3, 0, 4)); }},
                      {"expected [N, H, W, C]", [&] { conv(x3, w); }},
                      {"expected [O, kh, kw, C]", [&] { conv(x, w3); }},
                      {"stride 0", [&] { conv(x, w, {}, zero_stride); }},
                      {"padding -1", [&] { conv(x, w, {}, one, negative); }},
                      {"does not fit", [&] { conv(x.narrow(1, 0, 2), w, {}, one, zero); }},
                      {"expected [4]", [&] { conv(x, w, w.select(1, 0).select(1, 0)); }},
                      {"w is bf16", [&] { conv(x, cast(*be, w, DType::bf16)); }},
                      {"cpu:1", [&] { conv(transfer(*be, x, *other), w); }},
                      {"no channels", [&] { conv(x.narrow(3, 0, 0), w.narrow(3, 0, 0)); }},
                  });
  // A depth-2 kernel does not fit a depth-1 input without temporal padding.
  const Tensor deep = w3.expand({4, 2, 3, 3, 5});
  expect_rejected(
      "conv3d", {
                    {"expected [N, D, H, W, C]", [&] { conv3d(*be, x, w, {}, ones3, ones3); }},
                    {"spatial dim 0", [&] { conv3d(*be, x3, deep, {}, ones3, no_depth_padding); }},
                });
}

}  // namespace
}  // namespace ditserve
