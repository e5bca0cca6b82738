#include "runtime/state_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "support/random.h"
#include "tensor/error.h"

namespace ditserve::runtime {
namespace {

using ::testing::HasSubstr;

GenerateRequest request() {
  GenerateRequest r;
  r.prompt = "a kite over the dunes";
  r.frames = 5;
  r.height = 32;
  r.width = 48;
  r.steps = 6;
  r.seed = 9;
  return r;
}

std::string rejection(const std::filesystem::path& path, const GenerateRequest& r, const Shape& shape) {
  try {
    load_state(path, "tiny", r, shape);
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "accepted";
}

TEST(StateFile, RoundTripsAndRefusesAnotherRequest) {
  const auto path = std::filesystem::temp_directory_path() / "ditserve_state_file_test.state";
  const Shape shape{1, 4, 2, 4, 6};
  const Tensor latents = ditserve::testing::random_tensor(shape, 5);
  save_state(path, "tiny", request(), latents, 4);
  const SavedState got = load_state(path, "tiny", request(), shape);
  EXPECT_EQ(got.step, 4);
  EXPECT_EQ(got.latents.to_vector_f32(), latents.to_vector_f32());  // bit-exact

  GenerateRequest other = request();
  other.seed = 10;
  EXPECT_THAT(rejection(path, other, shape), HasSubstr("state_file"));
  EXPECT_THAT(rejection(path, other, shape), HasSubstr("seed"));
  other = request();
  other.guidance = 6.5f;
  EXPECT_THAT(rejection(path, other, shape), HasSubstr("guidance"));
  EXPECT_THAT(rejection(path, request(), {1, 4, 2, 4, 4}), HasSubstr("state_file"));
  EXPECT_THAT(rejection(path.string() + ".missing", request(), shape), HasSubstr("state_file"));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ditserve::runtime
