#include "kernels/timing.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "tensor/error.h"

namespace ditserve {
namespace {

TEST(TimelineTest, AttributesEachIntervalToTheLaterMarkOnlyWhileActive) {
  const auto be = make_backend(Device::cpu(0));
  const auto other = make_backend(Device::cpu(1));
  Timeline timeline(*be);
  timeline_mark(*be, "ignored");  // nothing active yet
  {
    const ScopedTimeline active(timeline);
    timeline.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    timeline_mark(*be, "a");
    timeline_mark(*other, "other backend");  // not the timed backend: ignored
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    timeline_mark(*be, "b");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    timeline_mark(*be, "a");
  }
  timeline_mark(*be, "after");  // no longer active
  const auto totals = timeline.totals_ms();
  ASSERT_EQ(totals.size(), 2u);
  EXPECT_GE(totals.at("a"), 40.0);
  EXPECT_GE(totals.at("b"), 5.0);
  EXPECT_LT(totals.at("b"), totals.at("a"));
}

TEST(TimelineTest, MarkBeforeStartThrowsAndStampsMeasureElapsedTime) {
  const auto be = make_backend(Device::cpu(0));
  Timeline timeline(*be);
  EXPECT_THROW(timeline.mark("x"), InvalidArgument);
  const auto start = record_stamp(*be);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto end = record_stamp(*be);
  EXPECT_GE(end->elapsed_ms_since(*start), 10.0);
  EXPECT_EQ(device_memory(*be).reserved_high_bytes, 0u);  // the CPU backend has no pool
}

}  // namespace
}  // namespace ditserve
