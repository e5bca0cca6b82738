#include "kernels/attention.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

Tensor lengths_of(const std::vector<std::int32_t>& values) {
  Tensor t = Tensor::empty_host({static_cast<std::int64_t>(values.size())}, DType::i32);
  std::copy(values.begin(), values.end(), t.data<std::int32_t>());
  return t;
}

// softmax(scale * q k^T + bias) v per (batch, head), keys [0, len) only, in double.
std::vector<float> reference_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                       const AttentionParams& params) {
  const std::int64_t batch = q.size(0), sq = q.size(1), heads = q.size(2), d = q.size(3);
  const std::int64_t sk = k.size(1);
  const std::vector<float> qv = q.to_vector_f32(), kv = k.to_vector_f32(), vv = v.to_vector_f32();
  const std::vector<float> bias = params.bias.defined()
                                      ? params.bias.expand({batch, heads, sq, sk}).to_vector_f32()
                                      : std::vector<float>();
  const double scale = params.scale.value_or(1.0f / std::sqrt(static_cast<float>(d)));
  std::vector<float> out(static_cast<std::size_t>(batch * sq * heads * d));
  std::vector<double> p(static_cast<std::size_t>(sk));
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::int64_t len =
        params.key_lengths.defined() ? params.key_lengths.data<std::int32_t>()[b] : sk;
    for (std::int64_t h = 0; h < heads; ++h) {
      for (std::int64_t i = 0; i < sq; ++i) {
        const float* qi = qv.data() + ((b * sq + i) * heads + h) * d;
        double max = -INFINITY, sum = 0;
        for (std::int64_t j = 0; j < len; ++j) {
          const float* kj = kv.data() + ((b * sk + j) * heads + h) * d;
          double dot = 0;
          for (std::int64_t e = 0; e < d; ++e) dot += double(qi[e]) * kj[e];
          p[j] = scale * dot + (bias.empty() ? 0.0 : bias[((b * heads + h) * sq + i) * sk + j]);
          max = std::max(max, p[j]);
        }
        for (std::int64_t j = 0; j < len; ++j) sum += p[j] = std::exp(p[j] - max);
        for (std::int64_t e = 0; e < d; ++e) {
          double acc = 0;
          for (std::int64_t j = 0; j < len; ++j) {
            acc += p[j] * vv[((b * sk + j) * heads + h) * d + e];
          }
          out[((b * sq + i) * heads + h) * d + e] = static_cast<float>(acc / sum);
        }
      }
    }
  }
  return out;
}

AttentionParams scaled(float scale) {
  AttentionParams params;
  params.scale = scale;
  return params;
}

AttentionParams masked(const Tensor& key_lengths, const Tensor& bias = {}) {
  AttentionParams params;
  params.key_lengths = key_lengths;
  params.bias = bias;
  return params;
}

AttentionParams biased(const Tensor& bias) { return masked({}, bias); }

class AttentionTest : public ::testing::Test {
 protected:
  void expect_matches(const Tensor& q, const Tensor& k, const Tensor& v,
                      const AttentionParams& params, const std::string& name) {
    const Tensor out = attention(*be, q, k, v, params);
    EXPECT_EQ(out.shape(), q.shape()) << name;
    EXPECT_TRUE(out.is_contiguous()) << name;
    EXPECT_LT(testing::relative_error(out.to_vector_f32(), reference_attention(q, k, v, params)),
              1e-5)
        << name;
  }
  void expect_rejected(const std::function<void()>& call, const std::string& detail = "") {
    EXPECT_THAT(call,
                ThrowsMessage<InvalidArgument>(AllOf(HasSubstr("attention:"), HasSubstr(detail))));
  }

  std::unique_ptr<Backend> be = make_backend(Device::cpu(0));
  // B = 2, Sq = 7, Sk = 11, H = 3, D = 5.
  Tensor q = testing::random_tensor({2, 7, 3, 5}, 1, -2.0f, 2.0f);
  Tensor k = testing::random_tensor({2, 11, 3, 5}, 2, -2.0f, 2.0f);
  Tensor v = testing::random_tensor({2, 11, 3, 5}, 3);
};

TEST_F(AttentionTest, MatchesReferenceWithDefaultAndExplicitScale) {
  expect_matches(q, k, v, {}, "default scale");
  expect_matches(q, k, v, scaled(1.0f), "scale 1 (T5)");
}

TEST_F(AttentionTest, KeyLengthsHideTheKeysBeyondThem) {
  const AttentionParams params = masked(lengths_of({4, 11}));
  expect_matches(q, k, v, params, "key lengths");
  // Keys and values past each length must not influence the output at all.
  const Tensor k2 = be->empty(k.shape(), DType::f32), v2 = be->empty(v.shape(), DType::f32);
  copy_into(*be, k2, k);
  copy_into(*be, v2, v);
  copy_into(*be, k2.narrow(0, 0, 1).narrow(1, 4, 7), testing::random_tensor({1, 7, 3, 5}, 9));
  copy_into(*be, v2.narrow(0, 0, 1).narrow(1, 4, 7), testing::random_tensor({1, 7, 3, 5}, 10));
  EXPECT_EQ(attention(*be, q, k, v, params).to_vector_f32(),
            attention(*be, q, k2, v2, params).to_vector_f32());
}

TEST_F(AttentionTest, AddsBroadcastBias) {
  const std::vector<std::pair<std::string, Tensor>> biases = {
      {"full bias", testing::random_tensor({2, 3, 7, 11}, 4, -3.0f, 3.0f)},
      {"per-head bias (T5)", testing::random_tensor({1, 3, 7, 11}, 5, -3.0f, 3.0f)},
      {"key mask", testing::random_tensor({2, 1, 1, 11}, 6, -30.0f, 0.0f)},
      {"rank-2 bias", testing::random_tensor({7, 11}, 7)},
      {"transposed bias", testing::random_tensor({3, 11, 7}, 8).transpose(1, 2)},
  };
  for (const auto& [name, bias] : biases) {
    expect_matches(q, k, v, biased(bias), name);
    expect_matches(q, k, v, masked(lengths_of({11, 6}), bias), name + " with key lengths");
  }
}

TEST_F(AttentionTest, ReadsStridedViews) {
  // q, k, v as views out of one fused projection [B, S, 3, H, D].
  const Tensor qkv = testing::random_tensor({2, 11, 3, 3, 5}, 11, -2.0f, 2.0f);
  expect_matches(qkv.select(2, 0).narrow(1, 2, 7), qkv.select(2, 1), qkv.select(2, 2), {},
                 "fused qkv views");
  // Head dim without unit stride: copied, same function.
  const Tensor kt = testing::random_tensor({2, 11, 5, 3}, 12).transpose(2, 3);
  expect_matches(q, kt, v, masked(lengths_of({3, 9})), "strided head dim");
  // Heads first in memory ([B, H, S, D] transposed).
  const Tensor vh = testing::random_tensor({2, 3, 11, 5}, 13).transpose(1, 2);
  expect_matches(q, k, vh, {}, "heads-major v");
}

TEST_F(AttentionTest, LongQueriesAreProcessedInBlocks) {
  // More scores than the kernel holds at once (2^22): several blocks of query rows.
  const Tensor ql = testing::random_tensor({1, 1100, 1, 2}, 14);
  const Tensor kl = testing::random_tensor({1, 4096, 1, 2}, 15);
  const Tensor vl = testing::random_tensor({1, 4096, 1, 2}, 16);
  expect_matches(ql, kl, vl, masked(lengths_of({4000})), "long");
}

TEST_F(AttentionTest, SingleKeyReturnsItsValue) {
  const Tensor k1 = k.narrow(1, 0, 1), v1 = v.narrow(1, 0, 1);
  const Tensor out = attention(*be, q, k1, v1);
  const std::vector<float> got = out.to_vector_f32();
  const std::vector<float> want = v1.expand({2, 7, 3, 5}).to_vector_f32();
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6) << i;
}

TEST_F(AttentionTest, RejectsBadArguments) {
  const auto other = make_backend(Device::cpu(1));
  expect_rejected([&] { attention(*be, q.select(2, 0), k, v); }, "expected [B, Sq, H, D]");
  expect_rejected([&] { attention(*be, q, k.narrow(2, 0, 2), v.narrow(2, 0, 2)); },
                  "does not match q");
  expect_rejected([&] { attention(*be, q, k.narrow(3, 0, 4), v.narrow(3, 0, 4)); },
                  "does not match q");
  expect_rejected([&] { attention(*be, q, k, v.narrow(1, 0, 10)); }, "differs from k");
  expect_rejected([&] { attention(*be, q, k.narrow(1, 0, 0), v.narrow(1, 0, 0)); },
                  "at least one key");
  expect_rejected([&] { attention(*be, q, cast(*be, k, DType::bf16), v); }, "k is bf16");
  expect_rejected([&] { attention(*be, q, k, transfer(*be, v, *other)); }, "cpu:1");
  expect_rejected([&] { attention(*be, q, k, v, masked(lengths_of({4}))); }, "i32[2]");
  expect_rejected(
      [&] {
        attention(*be, q, k, v, masked(Tensor::from_vector({4, 5}, {2})));
      },
      "i32[2]");
  expect_rejected(
      [&] {
        attention(*be, q, k, v, masked(lengths_of({0, 5})));
      },
      "key_lengths[0] = 0");
  expect_rejected(
      [&] {
        attention(*be, q, k, v, masked(lengths_of({5, 12})));
      },
      "key_lengths[1] = 12");
  for (const Shape& shape : {Shape{2, 3, 7, 10}, Shape{1, 2, 3, 7, 11}, Shape{3, 1, 1, 1}}) {
    expect_rejected([&] { attention(*be, q, k, v, biased(testing::random_tensor(shape, 1))); },
                    "does not broadcast");
  }
  expect_rejected([&] { attention(*be, q, k, v, scaled(INFINITY)); }, "not finite");
}

}  // namespace
}  // namespace ditserve
