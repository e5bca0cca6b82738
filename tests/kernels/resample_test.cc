#include "kernels/resample.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// Row-major multi-index of flat position `flat` in `shape`.
std::vector<std::int64_t> unravel(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> index(shape.size());
  for (std::size_t i = shape.size(); i-- > 0;) {
    index[i] = flat % shape[i];
    flat /= shape[i];
  }
  return index;
}

class ResampleTest : public ::testing::Test {
 protected:
  // out[n, i1, ..., c] == x[n, i1 / f1, ..., c] for every element.
  void expect_upsampled(const Tensor& x, const std::vector<int>& factors) {
    const Tensor y = upsample_nearest(*be, x, factors);
    Shape want = x.shape();
    for (std::size_t i = 0; i < factors.size(); ++i) want[1 + i] *= factors[i];
    ASSERT_EQ(y.shape(), want);
    EXPECT_EQ(y.dtype(), x.dtype());
    const std::vector<float> got = y.to_vector_f32();
    for (std::int64_t e = 0; e < y.numel(); ++e) {
      std::vector<std::int64_t> index = unravel(e, want);
      for (std::size_t i = 0; i < factors.size(); ++i) index[1 + i] /= factors[i];
      ASSERT_EQ(got[e], x.item_f32(index)) << "element " << e;
    }
  }
  // out[i] == x[i - before] inside, 0 outside.
  void expect_padded(const Tensor& x,
                     const std::vector<std::pair<std::int64_t, std::int64_t>>& pads) {
    Shape want = x.shape();
    for (std::size_t i = 0; i < pads.size(); ++i) want[i] += pads[i].first + pads[i].second;
    {  // Leave non-zero bytes in the block the output will most likely reuse.
      const Tensor junk = be->empty(want, x.dtype());
      std::memset(junk.raw_data(), 0x7f, junk.nbytes());
    }
    const Tensor y = pad(*be, x, pads);
    ASSERT_EQ(y.shape(), want);
    const std::vector<float> got = y.to_vector_f32();
    for (std::int64_t e = 0; e < y.numel(); ++e) {
      std::vector<std::int64_t> index = unravel(e, want);
      bool inside = true;
      for (std::size_t i = 0; i < pads.size(); ++i) {
        index[i] -= pads[i].first;
        inside = inside && index[i] >= 0 && index[i] < x.size(i);
      }
      ASSERT_EQ(got[e], inside ? x.item_f32(index) : 0.0f) << "element " << e;
    }
  }
  void expect_rejected(const std::function<void()>& call, const std::string& op) {
    EXPECT_THAT(call, ThrowsMessage<InvalidArgument>(HasSubstr(op + ":")));
  }

  std::unique_ptr<Backend> be = make_backend(Device::cpu(0));
};

TEST_F(ResampleTest, UpsampleNearestRepeatsEachPixel) {
  expect_upsampled(testing::random_tensor({2, 3, 5, 4}, 1), {2, 3});
  expect_upsampled(testing::random_tensor({1, 3, 4, 5, 2}, 2), {1, 2, 2});
  expect_upsampled(testing::random_tensor({2, 7, 3}, 3), {3});
}

TEST_F(ResampleTest, UpsampleNearestReadsViewsAndAnyDtype) {
  expect_upsampled(testing::random_tensor({2, 4, 3, 5}, 4).permute({0, 3, 2, 1}), {2, 2});
  expect_upsampled(testing::random_tensor({2, 3, 5, 4}, 5).narrow(3, 1, 2), {3, 1});
  expect_upsampled(cast(*be, testing::random_tensor({1, 3, 3, 2}, 6, 0.0f, 100.0f), DType::i32),
                   {2, 2});
  expect_upsampled(cast(*be, testing::random_tensor({1, 3, 3, 2}, 7), DType::bf16), {2, 2});
}

TEST_F(ResampleTest, PadZeroFillsAroundACopy) {
  const Tensor x = testing::random_tensor({2, 3, 4}, 8);
  expect_padded(x, {{0, 0}, {1, 2}, {3, 0}});
  expect_padded(x, {{2, 0}, {0, 0}, {0, 0}});  // causal: time padded at the front only
  expect_padded(x.transpose(0, 2), {{1, 1}, {0, 1}, {2, 2}});
  expect_padded(cast(*be, x, DType::bf16), {{0, 1}, {1, 0}, {0, 0}});
}

TEST_F(ResampleTest, PadWithoutPaddingCopies) {
  const Tensor x = testing::random_tensor({3, 5}, 9);
  const Tensor y = pad(*be, x.transpose(0, 1), {{0, 0}, {0, 0}});
  EXPECT_TRUE(y.is_contiguous());
  EXPECT_NE(y.storage(), x.storage());
  EXPECT_THAT(y.to_vector_f32(), ElementsAreArray(x.transpose(0, 1).to_vector_f32()));
}

TEST_F(ResampleTest, RejectsBadArguments) {
  const Tensor x = testing::random_tensor({2, 3, 5, 4}, 10);
  const auto other = make_backend(Device::cpu(1));
  expect_rejected([&] { upsample_nearest(*be, x, {2}); }, "upsample_nearest");
  expect_rejected([&] { upsample_nearest(*be, x, {2, 2, 2}); }, "upsample_nearest");
  expect_rejected([&] { upsample_nearest(*be, x, {2, 0}); }, "upsample_nearest");
  expect_rejected([&] { upsample_nearest(*be, x, {}); }, "upsample_nearest");
  expect_rejected(
      [&] {
        upsample_nearest(*be, transfer(*be, x, *other), {2, 2});
      },
      "upsample_nearest");
  expect_rejected([&] { pad(*be, x, {{0, 0}, {1, 1}}); }, "pad");
  expect_rejected([&] { pad(*be, x, {{0, 0}, {1, 1}, {0, -1}, {0, 0}}); }, "pad");
  expect_rejected(
      [&] {
        pad(*be, transfer(*be, x, *other), {{0, 0}, {0, 0}, {0, 0}, {0, 0}});
      },
      "pad");
}

}  // namespace
}  // namespace ditserve
