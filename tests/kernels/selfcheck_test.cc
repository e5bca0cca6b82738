#include "kernels/selfcheck.h"

#include <gtest/gtest.h>

namespace ditserve {
namespace {

TEST(SelfCheck, EveryKnownAnswerPassesOnTheCpu) {
  auto be = make_backend(Device::cpu());
  const auto results = run_self_check(*be);
  ASSERT_GE(results.size(), 10u);
  for (const auto& r : results) {
    EXPECT_TRUE(r.passed()) << r.name << ": max error " << r.max_error << " " << r.error;
  }
}

}  // namespace
}  // namespace ditserve
