#pragma once
// Helpers for io tests: a fresh temporary directory per test, hand-made files.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "tensor/tensor.h"

namespace ditserve::testing {

// A fixture owning an empty directory, removed after the test.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string leaf = "ditserve_io_" + std::string(info->test_suite_name()) + "_" +
                       info->name() + "_" + std::to_string(::getpid());
    for (char& c : leaf) c = (c == '/') ? '_' : c;  // parametrized names contain '/'
    dir_ = std::filesystem::temp_directory_path() / leaf;
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

// Writes a safetensors-shaped file byte by byte: the 8-byte little-endian length (the
// header's own length unless `declared_length` says otherwise), the header, the data.
inline void write_raw(const std::filesystem::path& path, const std::string& header,
                      const std::string& data = "",
                      std::optional<std::uint64_t> declared_length = std::nullopt) {
  const std::uint64_t length = declared_length.value_or(header.size());
  std::ofstream out(path, std::ios::binary);
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  out.write(bytes, 8);
  out << header << data;
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Host tensor whose bytes follow a pattern that differs per seed.
inline Tensor patterned(const Shape& shape, DType dtype, int seed) {
  Tensor t = Tensor::empty_host(shape, dtype);
  auto* bytes = static_cast<unsigned char*>(t.nbytes() ? t.raw_data() : nullptr);
  for (std::size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<unsigned char>(i * 37 + seed);
  return t;
}

inline std::string bytes_of(const Tensor& t) {
  if (t.nbytes() == 0) return {};
  return {static_cast<const char*>(t.raw_data()), t.nbytes()};
}

}  // namespace ditserve::testing
