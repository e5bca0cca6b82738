#include "io/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "io_test_util.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::ThrowsMessage;
using testing::bytes_of;
using testing::patterned;
using testing::read_bytes;
using testing::write_raw;

class Safetensors : public testing::TempDirTest {};

NamedTensors every_kind() {
  return {{"f32", patterned({2, 3}, DType::f32, 1)},
          {"bf16", patterned({5}, DType::bf16, 2)},
          {"f16", patterned({3, 1, 2}, DType::f16, 3)},
          {"i32", patterned({4}, DType::i32, 4)},
          {"i64", patterned({2, 2}, DType::i64, 5)},
          {"u8", patterned({7}, DType::u8, 6)},
          {"scalar", patterned({}, DType::f32, 7)},
          {"empty", patterned({0, 3}, DType::f32, 8)},
          {"empty_u8", patterned({0}, DType::u8, 9)}};
}

// The address range of `path` in this process's memory map, from /proc/self/maps.
std::optional<std::pair<std::uintptr_t, std::uintptr_t>> mapped_range(const fs::path& path) {
  std::ifstream maps("/proc/self/maps");
  const std::string wanted = fs::canonical(path).string();
  for (std::string line; std::getline(maps, line);) {
    if (line.size() < wanted.size() || line.compare(line.size() - wanted.size(), wanted.size(),
                                                    wanted) != 0) {
      continue;
    }
    std::istringstream fields(line);
    std::uintptr_t begin = 0, end = 0;
    char dash = 0;
    fields >> std::hex >> begin >> dash >> end;
    return std::make_pair(begin, end);
  }
  return std::nullopt;
}

std::string memory_map() { return testing::read_bytes("/proc/self/maps"); }

TEST_F(Safetensors, RoundTripsEveryDTypeScalarsEmptyTensorsAndMetadata) {
  const fs::path path = dir_ / "all.safetensors";
  const NamedTensors tensors = every_kind();
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "ditserve test"}});

  const SafetensorsFile file(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_THAT(file.names(), ElementsAre("bf16", "empty", "empty_u8", "f16", "f32", "i32", "i64",
                                        "scalar", "u8"));
  EXPECT_THAT(file.metadata(), ElementsAre(std::pair<const std::string, std::string>("format", "pt"),
                                           std::pair<const std::string, std::string>(
                                               "note", "ditserve test")));
  for (const auto& [name, original] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(file.contains(name));
    const TensorInfo& info = file.info(name);
    EXPECT_EQ(info.dtype, original.dtype());
    EXPECT_EQ(info.shape, original.shape());
    EXPECT_EQ(info.nbytes, original.nbytes());
    const Tensor loaded = file.get(name);
    EXPECT_EQ(loaded.dtype(), original.dtype());
    EXPECT_EQ(loaded.shape(), original.shape());
    EXPECT_EQ(loaded.device(), Device::cpu(0));
    EXPECT_TRUE(loaded.is_contiguous());
    EXPECT_EQ(bytes_of(loaded), bytes_of(original));
    if (loaded.nbytes() > 0) {
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(loaded.raw_data()) % dtype_size(loaded.dtype()),
                0u);
    }
  }
  EXPECT_EQ(file.info("f32").format_dtype, "F32");
  EXPECT_EQ(file.info("bf16").format_dtype, "BF16");
  EXPECT_FALSE(file.contains("missing"));
}

TEST_F(Safetensors, HeaderIsPaddedWithSpacesToEightBytes) {
  const fs::path path = dir_ / "pad.safetensors";
  write_safetensors(path, {{"x", patterned({3}, DType::u8, 1)}});
  const std::string bytes = read_bytes(path);
  std::uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  EXPECT_EQ(length % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + length + 3);
  const std::string header = bytes.substr(8, length);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_first_not_of(' ', header.rfind('}') + 1), std::string::npos);
}

TEST_F(Safetensors, EmptyFileRoundTrips) {
  const fs::path path = dir_ / "none.safetensors";
  write_safetensors(path, {});
  const SafetensorsFile file(path);
  EXPECT_TRUE(file.names().empty());
  EXPECT_TRUE(file.metadata().empty());
}

TEST_F(Safetensors, RewritingReplacesTheFile) {
  const fs::path path = dir_ / "w.safetensors";
  write_safetensors(path, {{"a", patterned({2}, DType::f32, 1)}});
  write_safetensors(path, {{"b", patterned({3}, DType::f32, 2)}});
  EXPECT_THAT(SafetensorsFile(path).names(), ElementsAre("b"));
}

TEST_F(Safetensors, GetAliasesTheMappedFile) {
  const fs::path path = dir_ / "alias.safetensors";
  write_safetensors(path, {{"a", patterned({16}, DType::f32, 1)}, {"b", patterned({8}, DType::f32, 2)}});
  const SafetensorsFile file(path);
  const Tensor a = file.get("a");
  const Tensor b = file.get("b");
  const auto range = mapped_range(path);
  ASSERT_TRUE(range.has_value());
  for (const Tensor* t : {&a, &b}) {
    const auto p = reinterpret_cast<std::uintptr_t>(t->raw_data());
    EXPECT_GE(p, range->first);
    EXPECT_LE(p + t->nbytes(), range->second);
  }
  // Both tensors view one buffer at the distance their data_offsets put between them.
  EXPECT_EQ(static_cast<const char*>(b.raw_data()) - static_cast<const char*>(a.raw_data()), 64);
  EXPECT_EQ(file.get("a").raw_data(), a.raw_data());
}

TEST_F(Safetensors, TensorsOutliveTheFileObjectAndTheFileOnDisk) {
  const fs::path path = dir_ / "outlive.safetensors";
  const Tensor original = patterned({4, 5}, DType::bf16, 3);
  write_safetensors(path, {{"w", original}});
  Tensor loaded;
  {
    const SafetensorsFile file(path);
    loaded = file.get("w", {4, 5});
  }
  fs::remove(path);  // the mapping keeps the inode alive
  EXPECT_EQ(bytes_of(loaded), bytes_of(original));
  EXPECT_THAT(memory_map(), HasSubstr("outlive.safetensors")) << "mapping released too early";
  loaded = Tensor();
  EXPECT_THAT(memory_map(), Not(HasSubstr("outlive.safetensors"))) << "mapping not released";
}

TEST_F(Safetensors, MisalignedTensorsAreCopiedNotAliased) {
  // Data buffer: one pad byte, then an f32 at offset 1 (no alignment for f32).
  const std::string header =
      R"({"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
      R"("x":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  const float values[2] = {1.5f, -2.25f};
  std::string data(1, '\x07');
  data.append(reinterpret_cast<const char*>(values), sizeof(values));
  const fs::path path = dir_ / "misaligned.safetensors";
  write_raw(path, padded, data);
  const SafetensorsFile file(path);
  const Tensor x = file.get("x");
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(x.raw_data()) % 4, 0u);
  EXPECT_THAT(x.to_vector_f32(), ElementsAre(1.5f, -2.25f));
  EXPECT_EQ(file.get("pad").item_f32({0}), 7.0f);
}

TEST_F(Safetensors, ExpectedShapeIsChecked) {
  const fs::path path = dir_ / "shape.safetensors";
  write_safetensors(path, {{"blocks.3.attn.qkv.weight", patterned({6, 4}, DType::bf16, 1)}});
  const SafetensorsFile file(path);
  EXPECT_EQ(file.get("blocks.3.attn.qkv.weight", {6, 4}).shape(), (Shape{6, 4}));
  EXPECT_THAT([&] { file.get("blocks.3.attn.qkv.weight", {6, 5}); },
              ThrowsMessage<InvalidArgument>(AllOf(
                  HasSubstr("'blocks.3.attn.qkv.weight'"), HasSubstr(path.string()),
                  HasSubstr("shape [6, 4] expected [6, 5]"))));
}

TEST_F(Safetensors, MissingTensorNamesTensorAndFile) {
  const fs::path path = dir_ / "m.safetensors";
  write_safetensors(path, {{"a", patterned({1}, DType::f32, 1)}});
  const SafetensorsFile file(path);
  const auto message = AllOf(HasSubstr("tensor 'nope' not found in"), HasSubstr(path.string()));
  EXPECT_THAT([&] { file.get("nope"); }, ThrowsMessage<InvalidArgument>(message));
  EXPECT_THAT([&] { file.info("nope"); }, ThrowsMessage<InvalidArgument>(message));
  EXPECT_THAT([&] { file.get("nope", {1}); }, ThrowsMessage<InvalidArgument>(message));
}

TEST_F(Safetensors, UnsupportedDTypeIsListedButNotLoaded) {
  const fs::path path = dir_ / "f64.safetensors";
  write_raw(path, R"({"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})", std::string(16, '\0'));
  const SafetensorsFile file(path);
  ASSERT_TRUE(file.contains("d"));
  EXPECT_EQ(file.info("d").format_dtype, "F64");
  EXPECT_FALSE(file.info("d").dtype.has_value());
  EXPECT_EQ(file.info("d").nbytes, 16u);
  EXPECT_THAT([&] { file.get("d"); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr("'d'"), HasSubstr("F64"),
                                                   HasSubstr(path.string()))));
}

TEST_F(Safetensors, MissingFileAndDirectoryAreErrors) {
  const fs::path missing = dir_ / "absent.safetensors";
  EXPECT_THAT([&] { SafetensorsFile file(missing); },
              ThrowsMessage<Error>(AllOf(HasSubstr(missing.string()),
                                         HasSubstr("No such file"))));
  EXPECT_THAT([&] { SafetensorsFile file(dir_); },
              ThrowsMessage<Error>(AllOf(HasSubstr(dir_.string()),
                                         HasSubstr("not a regular file"))));
}

TEST_F(Safetensors, TruncatedFileNamesTheTensorThatDoesNotFit) {
  const fs::path path = dir_ / "cut.safetensors";
  write_safetensors(path, {{"first", patterned({4}, DType::f32, 1)},
                           {"second", patterned({4}, DType::u8, 2)}});
  fs::resize_file(path, fs::file_size(path) - 2);
  EXPECT_THAT([&] { SafetensorsFile file(path); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(path.string()),
                                                   HasSubstr("'second'"),
                                                   HasSubstr("truncated"))));
  fs::resize_file(path, 20);  // now the header itself is cut
  EXPECT_THAT([&] { SafetensorsFile file(path); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(path.string()),
                                                   HasSubstr("exceeds the 12 bytes after it"),
                                                   HasSubstr("truncated"))));
  fs::resize_file(path, 5);
  EXPECT_THAT([&] { SafetensorsFile file(path); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(path.string()),
                                                   HasSubstr("file is 5 bytes"))));
  fs::resize_file(path, 0);
  EXPECT_THAT([&] { SafetensorsFile file(path); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(path.string()),
                                                   HasSubstr("file is 0 bytes"))));
}

TEST_F(Safetensors, AbsurdHeaderLengthIsRejectedBeforeReading) {
  const fs::path path = dir_ / "huge.safetensors";
  write_raw(path, "{}", "", std::uint64_t{1} << 62);
  EXPECT_THAT([&] { SafetensorsFile file(path); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(path.string()),
                                                   HasSubstr("exceeds the limit"))));
}

// One crafted header per way a header can be broken, with what the message must name.
struct BrokenHeader {
  std::string label;
  std::string header;
  std::string data;
  std::vector<std::string> expected;
};

std::ostream& operator<<(std::ostream& os, const BrokenHeader& c) { return os << c.label; }

class BrokenHeaders : public testing::TempDirTest,
                      public ::testing::WithParamInterface<BrokenHeader> {};

TEST_P(BrokenHeaders, AreRejectedOnOpenNamingFileAndEntry) {
  const BrokenHeader& c = GetParam();
  const fs::path path = dir_ / "broken.safetensors";
  write_raw(path, c.header, c.data);
  try {
    SafetensorsFile file(path);
    FAIL() << "opened a file whose header is broken: " << c.label;
  } catch (const InvalidArgument& e) {
    const std::string message = e.what();
    EXPECT_THAT(message, HasSubstr(path.string()));
    for (const std::string& part : c.expected) EXPECT_THAT(message, HasSubstr(part));
  }
}

const std::string k8(8, '\0');

INSTANTIATE_TEST_SUITE_P(
    Safetensors, BrokenHeaders,
    ::testing::Values(
        BrokenHeader{"bad_json", R"({"w": {"dtype": )", "", {"not valid JSON"}},
        BrokenHeader{"empty_header", "", "", {"not valid JSON"}},
        BrokenHeader{"not_utf8", "{\"w\xff\": 1}", "", {"not valid JSON"}},
        BrokenHeader{"not_object", "[1, 2]", "", {"not a JSON object"}},
        BrokenHeader{"duplicate", R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                  R"("w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                     k8, {"'w' twice"}},
        BrokenHeader{"entry_not_object", R"({"w": 3})", "", {"'w'", "not an object"}},
        BrokenHeader{"missing_dtype", R"({"w":{"shape":[2],"data_offsets":[0,8]}})", k8,
                     {"'w'", "missing field 'dtype'"}},
        BrokenHeader{"missing_shape", R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", k8,
                     {"'w'", "missing field 'shape'"}},
        BrokenHeader{"missing_offsets", R"({"w":{"dtype":"F32","shape":[2]}})", k8,
                     {"'w'", "missing field 'data_offsets'"}},
        BrokenHeader{"dtype_not_string", R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})",
                     k8, {"'w'", "dtype 4 is not a string"}},
        BrokenHeader{"unknown_dtype", R"({"w":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})",
                     k8, {"'w'", "unknown dtype \"F31\""}},
        BrokenHeader{"shape_not_array", R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})",
                     k8, {"'w'", "shape \"2\" is not an array"}},
        BrokenHeader{"shape_negative", R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
                     k8, {"'w'", "negative -2"}},
        BrokenHeader{"shape_fraction", R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}})",
                     k8, {"'w'", "not an integer"}},
        BrokenHeader{"shape_overflow",
                     R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                     k8, {"'w'", "too large"}},
        BrokenHeader{"offsets_short", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})",
                     k8, {"'w'", "not a [begin, end] pair"}},
        BrokenHeader{"offsets_text", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":["0",8]}})",
                     k8, {"'w'", "not an integer"}},
        BrokenHeader{"offsets_reversed", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})",
                     k8, {"'w'", "end before they begin"}},
        BrokenHeader{"offsets_past_data", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                     k8, {"'w'", "past the 8-byte data buffer", "truncated"}},
        BrokenHeader{"offsets_vs_shape", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                     k8, {"'w'", "hold 8 bytes but F32[3] needs 12"}},
        BrokenHeader{"metadata_not_object", R"({"__metadata__": [1]})", "",
                     {"__metadata__ is not an object"}},
        BrokenHeader{"metadata_not_string", R"({"__metadata__": {"epoch": 3}})", "",
                     {"'epoch'", "not a string"}}),
    [](const ::testing::TestParamInfo<BrokenHeader>& info) { return info.param.label; });

TEST_F(Safetensors, WriterRejectsBadInputNamingTheTensorAndWritesNothing) {
  const fs::path path = dir_ / "out.safetensors";
  const Tensor good = patterned({2, 3}, DType::f32, 1);
  const auto rejects = [&](const NamedTensors& tensors, const std::string& part) {
    EXPECT_THAT([&] { write_safetensors(path, tensors); },
                ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(path.string()), HasSubstr(part))));
  };
  rejects({{"ok", good}, {"t", good.transpose(0, 1)}}, "'t' (f32[3, 2] on cpu:0) is not contiguous");
  rejects({{"a", good}, {"a", good}}, "'a': the name occurs twice");
  rejects({{"", good}}, "empty name");
  rejects({{"__metadata__", good}}, "reserved");
  rejects({{"u", Tensor()}}, "'u' is undefined");
  EXPECT_TRUE(fs::is_empty(dir_)) << "a rejected write left a file behind";
}

TEST_F(Safetensors, WriterFailureLeavesNoPartialFileAndKeepsTheOldOne) {
  const fs::path path = dir_ / "keep.safetensors";
  write_safetensors(path, {{"old", patterned({2}, DType::f32, 1)}});
  EXPECT_THROW(write_safetensors(path, {{"new", patterned({2}, DType::f32, 2).view({1, 2})
                                                    .expand({3, 2})}}),
               InvalidArgument);
  EXPECT_THAT(SafetensorsFile(path).names(), ElementsAre("old"));
  const fs::path nowhere = dir_ / "no_such_dir" / "x.safetensors";
  EXPECT_THAT([&] { write_safetensors(nowhere, {{"a", patterned({2}, DType::f32, 1)}}); },
              ThrowsMessage<Error>(HasSubstr(nowhere.string())));
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir_)) left.push_back(entry.path().filename());
  EXPECT_THAT(left, ElementsAre("keep.safetensors"));
}

}  // namespace
}  // namespace ditserve
