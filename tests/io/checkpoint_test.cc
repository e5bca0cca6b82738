#include "io/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;
using testing::bytes_of;
using testing::patterned;
using testing::read_bytes;

class CheckpointTest : public testing::TempDirTest {
 protected:
  // 1374 bytes; 400-byte shards take, greedily in order: {a} {b} {c} {d, e, f, g}.
  NamedTensors model() const {
    return {{"a", patterned({10, 10}, DType::f32, 1)},  // 400: fills shard 1
            {"b", patterned({}, DType::bf16, 2)},        // 2
            {"c", patterned({600}, DType::u8, 3)},       // 600: larger than a shard, alone
            {"d", patterned({2, 2}, DType::i64, 4)},     // 32
            {"e", patterned({0, 5}, DType::f16, 5)},     // 0
            {"f", patterned({30}, DType::i32, 6)},       // 120
            {"g", patterned({55}, DType::f32, 7)}};      // 220: 372 in shard 4
  }

  fs::path write_model(std::uint64_t max_shard_bytes) {
    return write_sharded_checkpoint(dir_ / "model", model(), max_shard_bytes, {{"format", "pt"}});
  }
};

TEST_F(CheckpointTest, ShardedRoundTripThroughIndexAndDirectory) {
  const fs::path index_path = write_model(400);
  EXPECT_EQ(index_path, dir_ / "model" / "model.safetensors.index.json");

  const json index = json::parse(read_bytes(index_path));
  EXPECT_EQ(index["metadata"]["total_size"], 1374);
  EXPECT_EQ(index["metadata"]["format"], "pt");
  EXPECT_EQ(index["weight_map"]["a"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["b"], "model-00002-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["c"], "model-00003-of-00004.safetensors");
  for (const char* name : {"d", "e", "f", "g"}) {
    EXPECT_EQ(index["weight_map"][name], "model-00004-of-00004.safetensors") << name;
  }
  EXPECT_EQ(SafetensorsFile(dir_ / "model" / "model-00001-of-00004.safetensors").metadata().at(
                "format"),
            "pt");

  for (const fs::path& path : {index_path, dir_ / "model"}) {
    SCOPED_TRACE(path.string());
    const Checkpoint checkpoint = open_checkpoint(path);
    EXPECT_EQ(checkpoint.path(), index_path);
    EXPECT_EQ(checkpoint.num_files(), 4u);
    EXPECT_THAT(checkpoint.names(), ElementsAre("a", "b", "c", "d", "e", "f", "g"));
    for (const auto& [name, original] : model()) {
      SCOPED_TRACE(name);
      ASSERT_TRUE(checkpoint.contains(name));
      EXPECT_EQ(checkpoint.info(name).shape, original.shape());
      const Tensor loaded = checkpoint.get(name, original.shape());
      EXPECT_EQ(loaded.dtype(), original.dtype());
      EXPECT_EQ(bytes_of(loaded), bytes_of(original));
    }
  }
}

TEST_F(CheckpointTest, OneShardWhenEverythingFits) {
  const Checkpoint checkpoint(write_model(1 << 20));
  EXPECT_EQ(checkpoint.num_files(), 1u);
  EXPECT_TRUE(fs::exists(dir_ / "model" / "model-00001-of-00001.safetensors"));
  EXPECT_EQ(checkpoint.names().size(), 7u);
}

TEST_F(CheckpointTest, SingleFileByPathAndByDirectory) {
  const Tensor w = patterned({3, 4}, DType::bf16, 9);
  write_safetensors(dir_ / "weights.safetensors", {{"w", w}});
  for (const fs::path& path : {dir_ / "weights.safetensors", dir_}) {
    const Checkpoint checkpoint(path);
    EXPECT_EQ(checkpoint.path(), dir_ / "weights.safetensors");
    EXPECT_EQ(checkpoint.num_files(), 1u);
    EXPECT_THAT(checkpoint.names(), ElementsAre("w"));
    EXPECT_EQ(bytes_of(checkpoint.get("w", {3, 4})), bytes_of(w));
  }
}

TEST_F(CheckpointTest, DirectoryPrefersTheIndex) {
  write_model(400);
  write_safetensors(dir_ / "model" / "model.safetensors", {{"single", patterned({1}, DType::u8, 1)}});
  const Checkpoint checkpoint(dir_ / "model");
  EXPECT_EQ(checkpoint.path().filename(), "model.safetensors.index.json");
  EXPECT_FALSE(checkpoint.contains("single"));

  fs::remove(dir_ / "model" / "model.safetensors.index.json");
  EXPECT_THAT(Checkpoint(dir_ / "model").names(), ElementsAre("single"));
}

TEST_F(CheckpointTest, DirectoryWithoutAClearCheckpointIsAnError) {
  EXPECT_THAT([&] { Checkpoint c(dir_); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(dir_.string()),
                                                   HasSubstr("no .safetensors file"))));
  write_safetensors(dir_ / "one.safetensors", {});
  write_safetensors(dir_ / "two.safetensors", {});
  EXPECT_THAT([&] { Checkpoint c(dir_); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(dir_.string()), HasSubstr("several"),
                                                   HasSubstr("one.safetensors"),
                                                   HasSubstr("two.safetensors"))));
}

TEST_F(CheckpointTest, MissingPathIsAnError) {
  const fs::path missing = dir_ / "nothing.safetensors";
  EXPECT_THAT([&] { Checkpoint c(missing); }, ThrowsMessage<Error>(HasSubstr(missing.string())));
}

TEST_F(CheckpointTest, MissingTensorNamesTheIndex) {
  const fs::path index_path = write_model(400);
  const Checkpoint checkpoint(index_path);
  const auto message = AllOf(HasSubstr("tensor 'blocks.3.attn.qkv.weight' not found in"),
                             HasSubstr(index_path.string()));
  EXPECT_THAT([&] { checkpoint.get("blocks.3.attn.qkv.weight"); },
              ThrowsMessage<InvalidArgument>(message));
  EXPECT_THAT([&] { checkpoint.info("blocks.3.attn.qkv.weight"); },
              ThrowsMessage<InvalidArgument>(message));
  EXPECT_FALSE(checkpoint.contains("blocks.3.attn.qkv.weight"));
}

TEST_F(CheckpointTest, ShapeMismatchNamesTheShard) {
  const Checkpoint checkpoint(write_model(400));
  EXPECT_THAT([&] { checkpoint.get("c", {601}); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr("'c'"),
                                                   HasSubstr("model-00003-of-00004.safetensors"),
                                                   HasSubstr("shape [600] expected [601]"))));
}

TEST_F(CheckpointTest, IndexNamingAMissingShardIsAnError) {
  const fs::path index_path = write_model(400);
  fs::remove(dir_ / "model" / "model-00002-of-00004.safetensors");
  EXPECT_THAT([&] { Checkpoint c(index_path); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(index_path.string()),
                                                   HasSubstr("'b'"),
                                                   HasSubstr("model-00002-of-00004.safetensors"),
                                                   HasSubstr("missing"))));
}

void rewrite_index(const fs::path& path, const json& index) {
  std::ofstream(path) << index.dump();
}

TEST_F(CheckpointTest, IndexNamingTheWrongShardIsAnError) {
  const fs::path index_path = write_model(400);
  json index = json::parse(read_bytes(index_path));
  index["weight_map"]["a"] = "model-00004-of-00004.safetensors";
  rewrite_index(index_path, index);
  EXPECT_THAT([&] { Checkpoint c(index_path); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(index_path.string()), HasSubstr("'a'"),
                                                   HasSubstr("model-00004-of-00004.safetensors"),
                                                   HasSubstr("does not contain it"))));
}

TEST_F(CheckpointTest, TensorInTwoShardsIsAnError) {
  const Tensor t = patterned({2}, DType::f32, 1);
  write_safetensors(dir_ / "s1.safetensors", {{"w", t}, {"x", t}});
  write_safetensors(dir_ / "s2.safetensors", {{"w", t}, {"y", t}});
  const fs::path index_path = dir_ / "model.safetensors.index.json";
  rewrite_index(index_path, {{"metadata", json::object()},
                             {"weight_map", {{"w", "s1.safetensors"}, {"x", "s1.safetensors"},
                                             {"y", "s2.safetensors"}}}});
  EXPECT_THAT([&] { Checkpoint c(dir_); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(index_path.string()), HasSubstr("'w'"),
                                                   HasSubstr("s1.safetensors"),
                                                   HasSubstr("s2.safetensors"))));
}

TEST_F(CheckpointTest, BrokenIndexIsAnError) {
  const fs::path index_path = dir_ / "model.safetensors.index.json";
  const auto rejects = [&](const std::string& text, const std::string& part) {
    std::ofstream(index_path) << text;
    EXPECT_THAT([&] { Checkpoint c(index_path); },
                ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(index_path.string()),
                                                     HasSubstr(part))));
  };
  rejects(R"({"weight_map": {"a": )", "not valid JSON");
  rejects(R"([])", "not a JSON object");
  rejects(R"({"metadata": {}})", "no \"weight_map\" object");
  rejects(R"({"weight_map": {"a": 3}})", "tensor 'a' is 3, not a shard file name");
}

TEST_F(CheckpointTest, BrokenShardNamesTheShard) {
  const fs::path index_path = write_model(400);
  const fs::path shard = dir_ / "model" / "model-00004-of-00004.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 1);
  EXPECT_THAT([&] { Checkpoint c(index_path); },
              ThrowsMessage<InvalidArgument>(AllOf(HasSubstr(shard.string()),
                                                   HasSubstr("truncated"))));
}

TEST_F(CheckpointTest, TensorsOutliveTheCheckpoint) {
  Tensor loaded;
  {
    const Checkpoint checkpoint(write_model(400));
    loaded = checkpoint.get("g");
  }
  EXPECT_EQ(bytes_of(loaded), bytes_of(model()[6].second));
}

TEST_F(CheckpointTest, WriterRejectsBadInputBeforeWritingAnyShard) {
  const Tensor good = patterned({4}, DType::f32, 1);
  EXPECT_THAT([&] {
    write_sharded_checkpoint(dir_ / "m", {{"a", good}, {"b", good.view({2, 2}).transpose(0, 1)}}, 8);
  }, ThrowsMessage<InvalidArgument>(AllOf(HasSubstr("'b'"), HasSubstr("not contiguous"))));
  EXPECT_FALSE(fs::exists(dir_ / "m"));
  EXPECT_THROW(write_sharded_checkpoint(dir_ / "m", {{"a", good}}, 0), InvalidArgument);
}

}  // namespace
}  // namespace ditserve
