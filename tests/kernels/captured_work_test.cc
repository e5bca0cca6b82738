#include "kernels/captured_work.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "tensor/error.h"

// capture_work on the CPU backend: the capture runs the work once and each replay runs it
// again; retained tensors live as long as the captured work; a capture that throws (here:
// a host transfer, which no capture may hold) names the device and the cause and leaves
// the backend usable; captures do not nest. The CUDA side is checked by tools/gpu_check
// (graph_check.cc).

namespace ditserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(CapturedWorkTest, CaptureRunsOnceAndEachReplayAgainReadingCurrentInputs) {
  const auto be = make_backend(Device::cpu());
  const Tensor x = Tensor::from_vector({1.0f, 2.0f}, {2});
  const Tensor y = Tensor::from_vector({0.0f, 0.0f}, {2});
  int runs = 0;
  const auto work = capture_work(*be, [&] {
    ++runs;
    copy_into(*be, y, add(*be, x, x));
  });
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(y.to_vector_f32(), (std::vector<float>{2.0f, 4.0f}));
  copy_into(*be, x, Tensor::from_vector({5.0f, -1.0f}, {2}));
  work->replay();
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(y.to_vector_f32(), (std::vector<float>{10.0f, -2.0f}));
}

TEST(CapturedWorkTest, IsCapturingOnlyInsideTheWorkAndOnlyForItsBackend) {
  const auto be = make_backend(Device::cpu(0));
  const auto other = make_backend(Device::cpu(1));
  bool inside = false, other_inside = true;
  EXPECT_FALSE(is_capturing(*be));
  const auto work = capture_work(*be, [&] {
    inside = is_capturing(*be);
    other_inside = is_capturing(*other);
  });
  EXPECT_TRUE(inside);
  EXPECT_FALSE(other_inside);
  EXPECT_FALSE(is_capturing(*be));
}

TEST(CapturedWorkTest, RetainedTensorsLiveAsLongAsTheCapturedWork) {
  const auto be = make_backend(Device::cpu());
  Tensor table = Tensor::from_vector({3.0f}, {1});
  const std::weak_ptr<Storage> storage = table.storage();
  retain_for_capture(*be, table);  // outside a capture: nothing kept
  Tensor replaced = Tensor::from_vector({3.0f}, {1});
  const std::weak_ptr<Storage> kept_storage = replaced.storage();
  {
    const auto work = capture_work(*be, [&] { retain_for_capture(*be, replaced); });
    replaced = Tensor();  // the owner drops it (a model's cache replacing a table)
    EXPECT_FALSE(kept_storage.expired());
    table = Tensor();
    EXPECT_TRUE(storage.expired());
  }
  EXPECT_TRUE(kept_storage.expired());
}

TEST(CapturedWorkTest, HostTransferInsideACaptureFailsNamingTheCauseAndLeavesTheBackendUsable) {
  const auto be = make_backend(Device::cpu(1));
  const auto host = make_backend(Device::cpu(0));  // where from_vector's tensors live
  try {
    (void)capture_work(*be, [&] { (void)transfer(*host, Tensor::from_vector({1.0f}, {1}), *be); });
    FAIL() << "expected the capture to fail";
  } catch (const Error& e) {
    EXPECT_THAT(std::string(e.what()),
                AllOf(HasSubstr("cpu:1"), HasSubstr("transfer"), HasSubstr("inside a capture")));
  }
  EXPECT_FALSE(is_capturing(*be));
  // Outside a capture the same transfer is fine, and a new capture works.
  EXPECT_EQ(transfer(*host, Tensor::from_vector({1.0f}, {1}), *be).to_vector_f32()[0], 1.0f);
  int runs = 0;
  const auto work = capture_work(*be, [&] { ++runs; });
  work->replay();
  EXPECT_EQ(runs, 2);
}

TEST(CapturedWorkTest, CapturesDoNotNest) {
  const auto be = make_backend(Device::cpu());
  EXPECT_THROW((void)capture_work(*be, [&] { (void)capture_work(*be, [] {}); }), Error);
  EXPECT_FALSE(is_capturing(*be));
  EXPECT_THROW((void)capture_work(*be, nullptr), InvalidArgument);
}

}  // namespace
}  // namespace ditserve
