// Every collective names itself (and the member at fault) in its errors.
#include <gtest/gtest.h>

#include "comm/collectives.h"
#include "comm_testing.h"

namespace ditserve {
namespace {

using testing::CpuDevices;
using testing_comm::expect_error;
using testing_comm::filled;

class Validation : public ::testing::Test {
 protected:
  Validation() : f(3) {}
  Tensor on(int rank, Shape shape) { return filled(f.fabric(), rank, shape, 0.0f); }
  Fabric& fab() { return f.fabric(); }
  testing::CpuDevices f;
  DeviceGroup g{{0, 1, 2}};
};

TEST_F(Validation, BadGroups) {
  const std::vector<Tensor> in{on(0, {2}), on(1, {2}), on(2, {2})};
  const DeviceGroup repeated{{0, 1, 0}};
  const DeviceGroup outside{{0, 1, 3}};
  const DeviceGroup empty{};
  expect_error([&] { all_to_all(fab(), repeated, in, 0, {1, 1, 0}, 0); }, {"all_to_all", "repeats"});
  expect_error([&] { all_gather(fab(), outside, in, 0); }, {"all_gather", "rank 3"});
  expect_error([&] { gather(fab(), empty, {}, 0, 0); }, {"gather", "no ranks"});
  expect_error([&] { scatter(fab(), repeated, in[0], 0, 0, {1, 1, 0}); }, {"scatter", "repeats"});
}

TEST_F(Validation, WrongInputCount) {
  const std::vector<Tensor> two{on(0, {2}), on(1, {2})};
  expect_error([&] { all_to_all(fab(), g, two, 0, {1, 1, 0}, 0); }, {"all_to_all", "2 inputs"});
  expect_error([&] { all_gather(fab(), g, two, 0); }, {"all_gather", "2 inputs"});
  expect_error([&] { gather(fab(), g, two, 0, 0); }, {"gather", "2 inputs"});
}

TEST_F(Validation, InputOnWrongDevice) {
  const std::vector<Tensor> in{on(0, {2}), on(2, {2}), on(2, {2})};
  expect_error([&] { all_to_all(fab(), g, in, 0, {1, 1, 0}, 0); },
               {"all_to_all", "inputs[1]", "member 1", "cpu:1"});
  expect_error([&] { all_gather(fab(), g, in, 0); }, {"all_gather", "inputs[1]"});
  expect_error([&] { gather(fab(), g, in, 0, 2); }, {"gather", "inputs[1]"});
  expect_error([&] { scatter(fab(), g, in[0], 1, 0, {1, 1, 0}); }, {"scatter", "input", "member 1"});
  expect_error([&] { all_gather(fab(), g, {in[0], Tensor(), in[2]}, 0); },
               {"all_gather", "inputs[1]", "undefined"});
}

TEST_F(Validation, MismatchedDtypeRankOrShape) {
  const Tensor bf = fab().device(1).empty({2}, DType::bf16);
  expect_error([&] { all_gather(fab(), g, {on(0, {2}), bf, on(2, {2})}, 0); },
               {"all_gather", "inputs[1]", "dtype"});
  expect_error([&] { all_to_all(fab(), g, {on(0, {2}), on(1, {2, 1}), on(2, {2})}, 0, {1, 1, 0}, 0); },
               {"all_to_all", "inputs[1]", "rank"});
  expect_error([&] { all_gather(fab(), g, {on(0, {2, 3}), on(1, {2, 4}), on(2, {2, 3})}, 0); },
               {"all_gather", "member 1"});
  expect_error([&] { gather(fab(), g, {on(0, {2, 3}), on(1, {2, 3}), on(2, {1, 3})}, 1, 0); },
               {"gather", "member 2"});
  // all_to_all: pieces that disagree outside concat_dim.
  expect_error([&] { all_to_all(fab(), g, {on(0, {3, 2}), on(1, {3, 2}), on(2, {3, 5})}, 0, {1, 1, 1}, 0); },
               {"all_to_all", "member 2"});
}

TEST_F(Validation, SplitSizes) {
  const std::vector<Tensor> in{on(0, {4}), on(1, {4}), on(2, {4})};
  expect_error([&] { all_to_all(fab(), g, in, 0, {1, 1}, 0); }, {"all_to_all", "2 sizes"});
  expect_error([&] { all_to_all(fab(), g, in, 0, {1, 1, 1}, 0); }, {"all_to_all", "sum to 3"});
  expect_error([&] { all_to_all(fab(), g, in, 0, {5, -1, 0}, 0); }, {"all_to_all", "negative"});
  expect_error([&] { all_to_all(fab(), g, {on(0, {4}), on(1, {3}), on(2, {4})}, 0, {2, 1, 1}, 0); },
               {"all_to_all", "inputs[1]"});
  expect_error([&] { scatter(fab(), g, in[0], 0, 0, {2, 1, 0}); }, {"scatter", "sum to 3"});
  expect_error([&] { scatter(fab(), g, in[0], 0, 0, {4}); }, {"scatter", "1 sizes"});
}

TEST_F(Validation, RootAndDimsOutOfRange) {
  const std::vector<Tensor> in{on(0, {4}), on(1, {4}), on(2, {4})};
  expect_error([&] { gather(fab(), g, in, 0, 3); }, {"gather", "root 3"});
  expect_error([&] { gather(fab(), g, in, 0, -1); }, {"gather", "root -1"});
  expect_error([&] { scatter(fab(), g, in[0], 3, 0, {2, 1, 1}); }, {"scatter", "root 3"});
  expect_error([&] { gather(fab(), g, in, 1, 0); }, {"gather", "dim 1"});
  expect_error([&] { all_gather(fab(), g, in, -2); }, {"all_gather", "dim -2"});
  expect_error([&] { all_to_all(fab(), g, in, 1, {2, 1, 1}, 0); }, {"all_to_all", "split_dim 1"});
  expect_error([&] { all_to_all(fab(), g, in, 0, {2, 1, 1}, 2); }, {"all_to_all", "concat_dim 2"});
  expect_error([&] { scatter(fab(), g, in[0], 0, 1, {2, 1, 1}); }, {"scatter", "dim 1"});
}

}  // namespace
}  // namespace ditserve
