// Cross-check with the reference implementation (python `safetensors`), both ways.
// Skipped when python3, numpy or safetensors is unavailable; the other io tests do not
// depend on python.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>

#include "io/safetensors.h"
#include "io_test_util.h"

namespace ditserve {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;

constexpr int kMissingModule = 77;

// Runs the helper script; returns its exit status, or kMissingModule if it cannot run.
int run_reference(const std::string& mode, const fs::path& file) {
  const fs::path script = fs::path(__FILE__).parent_path() / "safetensors_reference.py";
  if (!fs::exists(script)) return kMissingModule;
  const std::string command =
      "python3 '" + script.string() + "' " + mode + " '" + file.string() + "'";
  const int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return kMissingModule;
  const int code = WEXITSTATUS(status);
  return code == 127 ? kMissingModule : code;  // 127: the shell found no python3
}

// Must match expected() in safetensors_reference.py.
NamedTensors reference_tensors() {
  auto typed = [](const std::vector<float>& values, const Shape& shape, DType dtype) {
    Tensor t = Tensor::empty_host(shape, dtype);
    for (std::size_t i = 0; i < values.size(); ++i) {
      const float v = values[i];
      switch (dtype) {
        case DType::f32: t.data<float>()[i] = v; break;
        case DType::f16: t.data<std::uint16_t>()[i] = f32_to_f16(v); break;
        case DType::bf16: t.data<std::uint16_t>()[i] = f32_to_bf16(v); break;
        case DType::u8: t.data<std::uint8_t>()[i] = static_cast<std::uint8_t>(v); break;
        default: ADD_FAILURE() << "unused dtype";
      }
    }
    return t;
  };
  Tensor i32 = Tensor::empty_host({4}, DType::i32);
  const std::int32_t i32_values[] = {-3, 0, 7, 2147483647};
  std::copy(std::begin(i32_values), std::end(i32_values), i32.data<std::int32_t>());
  Tensor i64 = Tensor::empty_host({2, 2}, DType::i64);
  const std::int64_t i64_values[] = {-(std::int64_t{1} << 40), 1, 2, 3};
  std::copy(std::begin(i64_values), std::end(i64_values), i64.data<std::int64_t>());
  return {{"f32", typed({0, 0.5, 1, 1.5, 2, 2.5}, {2, 3}, DType::f32)},
          {"f16", typed({-1.5, -0.5, 0.5, 1.5}, {4}, DType::f16)},
          {"i32", i32},
          {"i64", i64},
          {"u8", typed({0, 50, 100, 150, 200}, {5}, DType::u8)},
          {"scalar", typed({3.25}, {}, DType::f32)},
          {"empty", Tensor::empty_host({0, 4}, DType::f32)},
          {"bf16", typed({1, -2, 0.5}, {3}, DType::bf16)}};
}

class Reference : public testing::TempDirTest {};

TEST_F(Reference, ReadsWhatTheReferenceWrites) {
  const fs::path path = dir_ / "from_python.safetensors";
  const int code = run_reference("write", path);
  if (code == kMissingModule) GTEST_SKIP() << "python3 with numpy and safetensors unavailable";
  ASSERT_EQ(code, 0);
  const SafetensorsFile file(path);
  EXPECT_EQ(file.metadata().at("source"), "reference");
  NamedTensors expected = reference_tensors();
  expected.pop_back();  // numpy cannot write bf16
  EXPECT_EQ(file.names().size(), expected.size());
  for (const auto& [name, want] : expected) {
    SCOPED_TRACE(name);
    const Tensor got = file.get(name, want.shape());
    EXPECT_EQ(got.dtype(), want.dtype());
    EXPECT_EQ(testing::bytes_of(got), testing::bytes_of(want));
  }
}

TEST_F(Reference, ReferenceReadsWhatWeWrite) {
  const fs::path path = dir_ / "from_cpp.safetensors";
  write_safetensors(path, reference_tensors(), {{"source", "reference"}});
  const int code = run_reference("check", path);
  if (code == kMissingModule) GTEST_SKIP() << "python3 with numpy and safetensors unavailable";
  EXPECT_EQ(code, 0) << "the reference implementation rejected or misread our file";
}

}  // namespace
}  // namespace ditserve
