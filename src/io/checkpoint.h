#pragma once
// A checkpoint: one name -> tensor view over a single .safetensors file or a sharded set
// described by a "*.safetensors.index.json" ({"metadata": ..., "weight_map": {tensor
// name: shard file name}}) beside its shards.

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace ditserve {

class Checkpoint {
 public:
  // `path` is a .safetensors file, an index .json, or a directory holding either. In a
  // directory the first match wins: model.safetensors.index.json, the only *.index.json,
  // model.safetensors, the only *.safetensors. Every shard the index names is opened and
  // its header validated now (data stays on disk until used). Throws Error/InvalidArgument
  // naming the file for a missing or broken file, an index naming a missing shard or a
  // tensor its shard lacks, or a tensor stored in two shards. Tensors present in a shard
  // but absent from the index are not visible. Immutable, copyable, thread-safe.
  explicit Checkpoint(const std::filesystem::path& path);

  // The file opened: the .safetensors file or the index.
  const std::filesystem::path& path() const { return path_; }
  std::size_t num_files() const { return files_.size(); }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  // The three below throw InvalidArgument naming the tensor and path() when the tensor
  // is absent, and as SafetensorsFile does (naming the shard) otherwise.
  const TensorInfo& info(const std::string& name) const;
  // Zero-copy host tensor, see SafetensorsFile::get.
  Tensor get(const std::string& name) const;
  Tensor get(const std::string& name, const Shape& expected_shape) const;

 private:
  const SafetensorsFile& file_of(const std::string& name) const;

  std::filesystem::path path_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::size_t, std::less<>> file_index_;  // name -> files_ position
};

inline Checkpoint open_checkpoint(const std::filesystem::path& path) { return Checkpoint(path); }

}  // namespace ditserve
