#include "tensor/tensor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>

#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

Tensor iota(const Shape& shape) { return testing::iota_tensor(shape); }

TEST(Shape, HelpersFormatCountAndStride) {
  EXPECT_EQ(shape_str({2, 3, 4}), "[2, 3, 4]");
  EXPECT_EQ(shape_str({}), "[]");
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({5, 0}), 0);
  EXPECT_THAT(contiguous_strides({2, 3, 4}), ElementsAre(12, 4, 1));
}

TEST(Tensor, EmptyHostIsContiguousAndDescribed) {
  const Tensor t = Tensor::empty_host({2, 3}, DType::bf16);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.device(), Device::cpu(0));
  EXPECT_EQ(t.dim(), 2);
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 12u);
  EXPECT_EQ(t.size(-1), 3);
  EXPECT_EQ(t.stride(0), 3);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.describe(), "bf16[2, 3] on cpu:0");
  EXPECT_EQ(Tensor().describe(), "undefined tensor");
  EXPECT_FALSE(Tensor().defined());
}

TEST(Tensor, EmptyOnAnotherCpuDeviceReportsIt) {
  const Tensor t = Tensor::empty({4}, DType::i64, make_host_allocator(Device::cpu(3)));
  EXPECT_EQ(t.device(), Device::cpu(3));
  EXPECT_EQ(t.describe(), "i64[4] on cpu:3");
}

TEST(Tensor, RejectsBadConstruction) {
  EXPECT_THROW(Tensor::empty_host({2, -1}, DType::f32), InvalidArgument);
  EXPECT_THAT([] { Tensor::from_vector({1, 2, 3}, {2, 2}); },
              ThrowsMessage<InvalidArgument>(HasSubstr("from_vector")));
  EXPECT_THAT([] { Tensor().device(); }, ThrowsMessage<InvalidArgument>(HasSubstr("undefined")));
  EXPECT_THAT([] { iota({2, 3}).size(2); },
              ThrowsMessage<InvalidArgument>(HasSubstr("out of range")));
}

TEST(Tensor, ViewInfersOneDimAndChecksNumel) {
  const Tensor t = iota({2, 3, 4});
  const Tensor v = t.view({-1, 4});
  EXPECT_THAT(v.shape(), ElementsAre(6, 4));
  EXPECT_EQ(v.storage(), t.storage());
  EXPECT_EQ(v.item_f32({5, 3}), 23.0f);
  EXPECT_THAT(t.view({4, -1}).shape(), ElementsAre(4, 6));
  EXPECT_THAT(t.view({24}).shape(), ElementsAre(24));
  EXPECT_THAT([&] { t.view({-1, -1}); }, ThrowsMessage<InvalidArgument>(HasSubstr("more than one -1")));
  EXPECT_THAT([&] { t.view({5, -1}); }, ThrowsMessage<InvalidArgument>(HasSubstr("cannot infer")));
  EXPECT_THAT([&] { t.view({5, 5}); }, ThrowsMessage<InvalidArgument>(HasSubstr("view")));
  EXPECT_THAT([&] { t.view({-2, 12}); }, ThrowsMessage<InvalidArgument>(HasSubstr("bad size")));
  EXPECT_THAT([&] { t.transpose(0, 1).view({24}); },
              ThrowsMessage<InvalidArgument>(HasSubstr("not contiguous")));
}

TEST(Tensor, PermuteAndTransposeMoveStrides) {
  const Tensor t = iota({2, 3, 4});
  const Tensor p = t.permute({2, 0, 1});
  EXPECT_THAT(p.shape(), ElementsAre(4, 2, 3));
  EXPECT_THAT(p.strides(), ElementsAre(1, 12, 4));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.item_f32({3, 1, 2}), t.item_f32({1, 2, 3}));
  const Tensor tr = t.transpose(-1, 0);
  EXPECT_THAT(tr.shape(), ElementsAre(4, 3, 2));
  EXPECT_EQ(tr.item_f32({1, 2, 1}), t.item_f32({1, 2, 1}));
  EXPECT_THAT([&] { t.permute({0, 1}); }, ThrowsMessage<InvalidArgument>(HasSubstr("permute")));
  EXPECT_THAT([&] { t.permute({0, 1, 1}); }, ThrowsMessage<InvalidArgument>(HasSubstr("repeated")));
  EXPECT_THROW(t.permute({0, 1, 3}), InvalidArgument);
}

TEST(Tensor, NarrowAndSelectOffsetTheView) {
  const Tensor t = iota({3, 5});
  const Tensor n = t.narrow(1, 1, 3);
  EXPECT_THAT(n.shape(), ElementsAre(3, 3));
  EXPECT_FALSE(n.is_contiguous());
  EXPECT_THAT(n.to_vector_f32(), ElementsAre(1, 2, 3, 6, 7, 8, 11, 12, 13));
  EXPECT_TRUE(t.narrow(0, 1, 2).is_contiguous());
  EXPECT_EQ(t.narrow(0, 3, 0).numel(), 0);
  EXPECT_THAT(t.select(0, 1).to_vector_f32(), ElementsAre(5, 6, 7, 8, 9));
  EXPECT_THAT(t.select(1, -1).to_vector_f32(), ElementsAre(4, 9, 14));
  EXPECT_EQ(t.select(0, 2).dim(), 1);
  EXPECT_THAT([&] { t.narrow(1, 3, 3); }, ThrowsMessage<InvalidArgument>(HasSubstr("narrow")));
  EXPECT_THROW(t.narrow(1, -1, 2), InvalidArgument);
  EXPECT_THAT([&] { t.select(0, 3); }, ThrowsMessage<InvalidArgument>(HasSubstr("select")));
  EXPECT_THROW(t.select(0, -4), InvalidArgument);
}

TEST(Tensor, UnsqueezeAndSqueeze) {
  const Tensor t = iota({2, 3});
  EXPECT_THAT(t.unsqueeze(0).shape(), ElementsAre(1, 2, 3));
  EXPECT_THAT(t.unsqueeze(1).shape(), ElementsAre(2, 1, 3));
  EXPECT_THAT(t.unsqueeze(-1).shape(), ElementsAre(2, 3, 1));
  EXPECT_TRUE(t.unsqueeze(2).is_contiguous());
  EXPECT_EQ(t.unsqueeze(1).item_f32({1, 0, 2}), 5.0f);
  EXPECT_THAT(t.unsqueeze(1).squeeze(1).shape(), ElementsAre(2, 3));
  EXPECT_THAT(t.unsqueeze(0).squeeze(-3).to_vector_f32(), ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_THAT([&] { t.squeeze(0); }, ThrowsMessage<InvalidArgument>(HasSubstr("squeeze")));
  EXPECT_THROW(t.unsqueeze(4), InvalidArgument);
}

TEST(Tensor, ExpandBroadcastsWithZeroStrides) {
  const Tensor t = iota({3, 1});
  const Tensor e = t.expand({2, 3, 4});
  EXPECT_THAT(e.shape(), ElementsAre(2, 3, 4));
  EXPECT_THAT(e.strides(), ElementsAre(0, 1, 0));
  EXPECT_EQ(e.item_f32({1, 2, 3}), 2.0f);
  EXPECT_THAT(e.select(0, 0).to_vector_f32(), ElementsAre(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2));
  EXPECT_THAT([&] { t.expand({2, 2}); }, ThrowsMessage<InvalidArgument>(HasSubstr("expand")));
  EXPECT_THROW(t.expand({4, 4}), InvalidArgument);
  EXPECT_THROW(t.expand({4}), InvalidArgument);
}

TEST(Tensor, FlattenMergesCompatibleDims) {
  const Tensor t = iota({2, 3, 4});
  EXPECT_THAT(t.flatten(0, 1).shape(), ElementsAre(6, 4));
  EXPECT_THAT(t.flatten(1, -1).shape(), ElementsAre(2, 12));
  EXPECT_THAT(t.flatten(0, -1).strides(), ElementsAre(1));
  // Outer dims of a narrowed view still merge when only the inner dim was cut.
  const Tensor narrowed = t.narrow(2, 1, 2);  // [2, 3, 2] strides [12, 4, 1]
  const Tensor f = narrowed.flatten(0, 1);    // dims 0 and 1 merge (12 == 4 * 3)
  EXPECT_THAT(f.shape(), ElementsAre(6, 2));
  EXPECT_THAT(f.to_vector_f32(), ElementsAreArray(narrowed.to_vector_f32()));
  // Size-1 dims are free to sit anywhere.
  const Tensor ones = t.unsqueeze(1).unsqueeze(3);  // [2, 1, 3, 1, 4]
  EXPECT_THAT(ones.flatten(0, 4).to_vector_f32(), ElementsAreArray(t.to_vector_f32()));
  // Expanded (stride 0) dims merge with each other.
  const Tensor e = iota({4}).expand({2, 3, 4});
  EXPECT_THAT(e.flatten(0, 1).strides(), ElementsAre(0, 1));
}

TEST(Tensor, FlattenRejectsNonMergeableDims) {
  const Tensor t = iota({2, 3, 4});
  EXPECT_THAT([&] { t.transpose(0, 1).flatten(0, 1); },
              ThrowsMessage<InvalidArgument>(HasSubstr("not mergeable")));
  EXPECT_THROW(t.narrow(2, 0, 3).flatten(1, 2), InvalidArgument);
  // A size-1 dim between two non-mergeable dims must not hide the gap.
  const Tensor gap = t.narrow(2, 0, 3).unsqueeze(2);  // [2, 3, 1, 3], strides [12, 4, ., 1]
  EXPECT_THROW(gap.flatten(1, 3), InvalidArgument);
  EXPECT_THROW(t.flatten(2, 1), InvalidArgument);
}

TEST(Tensor, ItemAndToVectorReadEveryDtype) {
  const Tensor t = iota({2, 2});
  EXPECT_EQ(t.item_f32({1, 0}), 2.0f);
  EXPECT_THAT([&] { t.item_f32({2, 0}); }, ThrowsMessage<InvalidArgument>(HasSubstr("item_f32")));
  EXPECT_THROW(t.item_f32({0}), InvalidArgument);

  Tensor b = Tensor::empty_host({2}, DType::bf16);
  b.data<std::uint16_t>()[0] = f32_to_bf16(1.5f);
  b.data<std::uint16_t>()[1] = f32_to_bf16(-3.0f);
  EXPECT_THAT(b.to_vector_f32(), ElementsAre(1.5f, -3.0f));
  Tensor h = Tensor::empty_host({1}, DType::f16);
  h.data<std::uint16_t>()[0] = f32_to_f16(0.25f);
  EXPECT_EQ(h.item_f32({0}), 0.25f);
  Tensor i = Tensor::empty_host({2}, DType::i64);
  i.data<std::int64_t>()[0] = -7;
  i.data<std::int64_t>()[1] = 40000;
  EXPECT_THAT(i.to_vector_f32(), ElementsAre(-7.0f, 40000.0f));
  Tensor u = Tensor::empty_host({1}, DType::u8);
  u.data<std::uint8_t>()[0] = 200;
  EXPECT_EQ(u.item_f32({0}), 200.0f);
  Tensor s = Tensor::empty_host({}, DType::i32);
  s.data<std::int32_t>()[0] = -5;
  EXPECT_EQ(s.item_f32({}), -5.0f);
}

TEST(Tensor, BroadcastShapesFollowsNumpy) {
  EXPECT_THAT(broadcast_shapes({3, 1}, {4}), ElementsAre(3, 4));
  EXPECT_THAT(broadcast_shapes({2, 1, 5}, {3, 1}), ElementsAre(2, 3, 5));
  EXPECT_THAT(broadcast_shapes({}, {2, 2}), ElementsAre(2, 2));
  EXPECT_THAT(broadcast_shapes({1}, {0}), ElementsAre(0));
  EXPECT_THAT([] { broadcast_shapes({3}, {4}); },
              ThrowsMessage<InvalidArgument>(HasSubstr("[3] and [4] cannot broadcast")));
  EXPECT_THROW(broadcast_shapes({2, 3}, {3, 3}), InvalidArgument);
}

}  // namespace
}  // namespace ditserve

namespace ditserve {
namespace {

TEST(BroadcastsTo, FollowsNumpyRulesOneWay) {
  EXPECT_TRUE(broadcasts_to({3}, {2, 3}));
  EXPECT_TRUE(broadcasts_to({1, 3}, {2, 3}));
  EXPECT_TRUE(broadcasts_to({}, {2, 3}));
  EXPECT_FALSE(broadcasts_to({2, 3}, {3}));     // more dims than the target
  EXPECT_FALSE(broadcasts_to({2, 1}, {2, 3, 4}));
  EXPECT_FALSE(broadcasts_to({2, 3}, {1, 3}));  // only size-1 dims stretch
}

}  // namespace
}  // namespace ditserve
