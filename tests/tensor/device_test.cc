#include "tensor/device.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tensor/error.h"

namespace ditserve {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

std::string quoted(const char* text) { return std::string(1, '\'').append(text).append(1, '\''); }

TEST(Device, ParsesKindAndIndex) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu(0));
  EXPECT_EQ(Device::parse("cpu:3"), Device::cpu(3));
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:12"), Device::cuda(12));
}

TEST(Device, RejectsMalformedText) {
  for (const char* text : {"", "gpu", "gpu:0", "CUDA:0", "cuda:", "cuda:-1", "cuda:1x",
                           "cuda:x", "cpu:1:2", " cpu", "cuda:+1"}) {
    EXPECT_THAT([&] { Device::parse(text); },
                ThrowsMessage<InvalidArgument>(HasSubstr(quoted(text))))
        << text;
  }
}

TEST(Device, StrRoundTripsThroughParse) {
  for (const Device d : {Device::cpu(0), Device::cpu(7), Device::cuda(0), Device::cuda(3)}) {
    EXPECT_EQ(Device::parse(d.str()), d);
  }
  EXPECT_EQ(Device::cuda(1).str(), "cuda:1");
  EXPECT_EQ(Device::cpu().str(), "cpu:0");
}

TEST(Device, KindPredicatesAndOrdering) {
  EXPECT_TRUE(Device::cpu(2).is_cpu());
  EXPECT_FALSE(Device::cpu(2).is_cuda());
  EXPECT_TRUE(Device::cuda().is_cuda());
  EXPECT_NE(Device::cpu(0), Device::cpu(1));
  EXPECT_NE(Device::cpu(0), Device::cuda(0));
  EXPECT_LT(Device::cpu(0), Device::cpu(1));
}

}  // namespace
}  // namespace ditserve
