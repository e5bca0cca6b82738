#include "kernels/embedding.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/copy.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

template <typename T>
Tensor ids_tensor(const std::vector<T>& values, const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty_host(shape, dtype);
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

class EmbeddingTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu(0));
};

TEST_F(EmbeddingTest, GathersRowsForI32AndI64Ids) {
  const Tensor table = testing::random_tensor({11, 7}, 1);
  const Tensor ids32 = ids_tensor<std::int32_t>({3, 0, 10, 3, 5, 9}, {2, 3}, DType::i32);
  const Tensor out = embedding(*be, table, ids32);
  ASSERT_THAT(out.shape(), ElementsAre(2, 3, 7));
  const std::int32_t* id = ids32.data<std::int32_t>();
  for (std::int64_t n = 0; n < 6; ++n) {
    for (std::int64_t c = 0; c < 7; ++c) {
      EXPECT_EQ(out.item_f32({n / 3, n % 3, c}), table.item_f32({id[n], c}));
    }
  }
  const Tensor ids64 = ids_tensor<std::int64_t>({10, 1}, {2}, DType::i64);
  const Tensor out64 = embedding(*be, table, ids64);
  ASSERT_THAT(out64.shape(), ElementsAre(2, 7));
  EXPECT_EQ(out64.select(0, 0).to_vector_f32(), table.select(0, 10).to_vector_f32());
  EXPECT_EQ(out64.select(0, 1).to_vector_f32(), table.select(0, 1).to_vector_f32());
}

TEST_F(EmbeddingTest, AcceptsStridedTableAndIds) {
  const Tensor table = testing::random_tensor({5, 13}, 2).transpose(0, 1);  // [13, 5]
  const Tensor ids = ids_tensor<std::int64_t>({0, 1, 2, 12, 11, 10}, {2, 3}, DType::i64).transpose(0, 1);
  const Tensor out = embedding(*be, table, ids);  // ids [3, 2]
  ASSERT_THAT(out.shape(), ElementsAre(3, 2, 5));
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 2; ++j) {
      const auto row = static_cast<std::int64_t>(ids.item_f32({i, j}));
      EXPECT_EQ(out.select(0, i).select(0, j).to_vector_f32(), table.select(0, row).to_vector_f32());
    }
  // A 0-dim id gives one row of shape [C].
  EXPECT_THAT(embedding(*be, table, ids_tensor<std::int32_t>({4}, {}, DType::i32)).shape(), ElementsAre(5));
}

TEST_F(EmbeddingTest, RejectsBadArgumentsNamingTheOpAndTheId) {
  const Tensor table = testing::random_tensor({11, 7}, 3);
  const auto named = ThrowsMessage<InvalidArgument>(HasSubstr("embedding"));
  EXPECT_THAT([&] { embedding(*be, table, ids_tensor<std::int32_t>({1, 11}, {2}, DType::i32)); },
              ThrowsMessage<InvalidArgument>(HasSubstr("id 11")));
  EXPECT_THAT([&] { embedding(*be, table, ids_tensor<std::int64_t>({-1}, {1}, DType::i64)); },
              ThrowsMessage<InvalidArgument>(HasSubstr("id -1")));
  EXPECT_THAT([&] { embedding(*be, table, Tensor::from_vector({1.0f}, {1})); }, named);
  EXPECT_THAT([&] { embedding(*be, table.select(0, 0), ids_tensor<std::int32_t>({0}, {1}, DType::i32)); }, named);
  EXPECT_THAT([&] { embedding(*be, cast(*be, table, DType::bf16), ids_tensor<std::int32_t>({0}, {1}, DType::i32)); }, named);
  const auto other = make_backend(Device::cpu(1));
  const Tensor far_ids = transfer(*be, ids_tensor<std::int32_t>({0}, {1}, DType::i32), *other);
  EXPECT_THAT([&] { embedding(*be, table, far_ids); }, named);
  EXPECT_THAT([&] { embedding(*be, table, Tensor()); }, named);
}

// Reference sinusoidal embedding in double: f_i = max_period^(-i/half).
std::vector<float> timestep_ref(const std::vector<float>& t, int dim, bool cos_first, double max_period) {
  const int half = dim / 2;
  std::vector<float> out(t.size() * dim, 0.0f);
  for (std::size_t b = 0; b < t.size(); ++b)
    for (int i = 0; i < half; ++i) {
      const double arg = t[b] * std::pow(max_period, -static_cast<double>(i) / half);
      out[b * dim + i] = static_cast<float>(cos_first ? std::cos(arg) : std::sin(arg));
      out[b * dim + half + i] = static_cast<float>(cos_first ? std::sin(arg) : std::cos(arg));
    }
  return out;
}

TEST_F(EmbeddingTest, TimestepEmbeddingMatchesReference) {
  const std::vector<float> ts = {0.0f, 1.5f, 999.0f, 500.25f, 37.0f};
  const Tensor t = Tensor::from_vector(ts, {5});
  for (bool cos_first : {true, false}) {
    for (int dim : {256, 33, 1, 2}) {
      const Tensor out = timestep_embedding(*be, t, dim, cos_first);
      ASSERT_THAT(out.shape(), ElementsAre(5, dim));
      EXPECT_EQ(out.dtype(), DType::f32);
      const std::vector<float> got = out.to_vector_f32();
      const std::vector<float> expected = timestep_ref(ts, dim, cos_first, 10000.0);
      for (std::size_t i = 0; i < got.size(); ++i) {
        // f32 arguments (as PyTorch computes them) differ from the double reference by
        // up to ~1e-4 rad at t = 999.
        EXPECT_NEAR(got[i], expected[i], 2e-4) << "dim " << dim << " at " << i;
      }
    }
  }
  // An odd dim has a zero last column; t = 0 gives cos = 1 and sin = 0.
  const Tensor odd = timestep_embedding(*be, t, 5, true, 100.0f);
  for (std::int64_t b = 0; b < 5; ++b) EXPECT_EQ(odd.item_f32({b, 4}), 0.0f);
  EXPECT_THAT(odd.select(0, 0).to_vector_f32(), ElementsAre(1.0f, 1.0f, 0.0f, 0.0f, 0.0f));
  // A strided t is read correctly.
  const Tensor strided = Tensor::from_vector({3.0f, -1.0f, 7.0f, -1.0f}, {2, 2}).select(1, 0);
  const std::vector<float> got = timestep_embedding(*be, strided, 8, false, 50.0f).to_vector_f32();
  const std::vector<float> expected = timestep_ref({3.0f, 7.0f}, 8, false, 50.0);
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-5);
}

TEST_F(EmbeddingTest, TimestepEmbeddingRejectsBadArguments) {
  const Tensor t = Tensor::from_vector({1.0f, 2.0f}, {2});
  const auto named = ThrowsMessage<InvalidArgument>(HasSubstr("timestep_embedding"));
  EXPECT_THAT([&] { timestep_embedding(*be, t, 0, true); }, named);
  EXPECT_THAT([&] { timestep_embedding(*be, t, -4, true); }, named);
  EXPECT_THAT([&] { timestep_embedding(*be, t, 8, true, 0.0f); }, named);
  EXPECT_THAT([&] { timestep_embedding(*be, t.view({1, 2}), 8, true); }, named);
  EXPECT_THAT([&] { timestep_embedding(*be, cast(*be, t, DType::i32), 8, true); }, named);
  EXPECT_THAT([&] { timestep_embedding(*be, cast(*be, t, DType::bf16), 8, true); }, named);
  const auto other = make_backend(Device::cpu(1));
  EXPECT_THAT([&] { timestep_embedding(*be, transfer(*be, t, *other), 8, true); }, named);
}

}  // namespace
}  // namespace ditserve
