#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "comm/fabric.h"
#include "kernels/copy.h"
#include "parallel/sequence_parallel.h"
#include "support/cpu_devices.h"
#include "support/random.h"

// Where FramePositionParallel runs each stage: a fake model records the token shapes each
// member's blocks receive and passes tokens through unchanged, so the result shows that
// the all-to-alls and the final gather put every token back in its place.

namespace ditserve {
namespace {

constexpr int kRanks = 4;

class RecordingStages final : public SpatioTemporalStages {
 public:
  RecordingStages(Backend& be, const Tensor& grid) : be_(be), grid_(grid) {}

  Backend& backend() const override { return be_; }
  std::int64_t depth() const override { return 2; }
  Tensor embed() override { return transfer(*host_, grid_, be_); }
  Tensor spatial_block(std::int64_t index, const Tensor& tokens) override {
    spatial.push_back(tokens.shape());
    return contiguous(be_, tokens);
  }
  Tensor temporal_block(std::int64_t index, const Tensor& tokens) override {
    temporal.push_back(tokens.shape());
    return contiguous(be_, tokens);
  }
  Tensor final(const Tensor& tokens) override {
    finals.push_back(tokens.shape());
    return contiguous(be_, tokens);
  }

  std::vector<Shape> spatial, temporal, finals;

 private:
  Backend& be_;
  Tensor grid_;  // on the host
  std::unique_ptr<Backend> host_ = make_backend(Device::cpu());
};

TEST(FramePositionParallelTest, EachMemberRunsItsFramesAndPositions) {
  const testing::CpuDevices devices(kRanks);
  Fabric& fabric = devices.fabric();
  const std::int64_t t = 3, s = 7;
  const Tensor grid = testing::iota_tensor({2, t, s, 5});  // [B, T, S, C]
  for (const DeviceGroup& group :
       {DeviceGroup{{1}}, DeviceGroup{{2, 0}}, DeviceGroup{{3, 1, 2}}, DeviceGroup{{0, 1, 2, 3}}}) {
    const int k = group.size();
    std::vector<std::unique_ptr<RecordingStages>> owned;
    std::vector<SpatioTemporalStages*> members;
    for (const int rank : group.ranks) {
      owned.push_back(std::make_unique<RecordingStages>(devices[rank], grid));
      members.push_back(owned.back().get());
    }
    FramePositionParallel step;
    const Tensor out = step.forward(fabric, group, members);
    ASSERT_EQ(out.device(), devices[group.ranks[0]].device());
    EXPECT_EQ(out.to_vector_f32(), grid.to_vector_f32()) << k << " members";

    const std::vector<std::int64_t> frames = even_split(t, k), positions = even_split(s, k);
    for (int i = 0; i < k; ++i) {
      const RecordingStages& m = *owned[i];
      const std::vector<Shape> spatial(frames[i] > 0 ? 2 : 0, Shape{2, frames[i], s, 5});
      const std::vector<Shape> temporal(positions[i] > 0 ? 2 : 0, Shape{2, t, positions[i], 5});
      EXPECT_EQ(m.spatial, spatial) << "member " << i << " of " << k;
      EXPECT_EQ(m.temporal, temporal) << "member " << i << " of " << k;
      const std::vector<Shape> finals(i == 0 ? 1 : 0, Shape{2, t, s, 5});
      EXPECT_EQ(m.finals, finals) << "member " << i << " of " << k;
    }
  }
}

}  // namespace
}  // namespace ditserve
