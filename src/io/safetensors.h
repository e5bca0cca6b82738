#pragma once
// Reading and writing the safetensors format: an 8-byte little-endian header length N,
// N bytes of JSON describing each tensor (dtype, shape, data_offsets) plus an optional
// "__metadata__" map of strings, then the raw data buffer.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace ditserve {

struct TensorInfo {
  std::string format_dtype;    // as written in the file: "BF16", "F64", ...
  std::optional<DType> dtype;  // empty when ditserve has no such dtype: get() throws
  Shape shape;
  std::uint64_t nbytes = 0;
};

// One .safetensors file, memory-mapped. The whole header is validated on open (length
// within the file, valid JSON without duplicate names, every entry complete, a known
// safetensors dtype, non-negative shape, data_offsets inside the data buffer and matching
// shape x dtype size); tensor bytes are only read from disk when a tensor is used.
// Tensors of dtypes ditserve lacks (F64, BOOL, ...) are listed, and get() refuses them.
// Copies share the mapping. Immutable after construction, so safe to share across threads.
// REQUIRES: nobody truncates or rewrites the file in place while it is mapped (a read of a
// vanished page raises SIGBUS); replacing it by rename, as the writers below do, is safe.
class SafetensorsFile {
 public:
  // Throws Error when the file cannot be opened or mapped, InvalidArgument when its
  // contents are malformed; messages name the file (and the tensor, where one is at fault).
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  // Throws InvalidArgument naming the tensor and the file when absent.
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const;  // "__metadata__"

  // A contiguous host tensor (cpu:0) that aliases the mapped file: zero copy, and it keeps
  // the mapping alive after this object is gone. REQUIRES: callers never write to it (the
  // mapping is read-only; a write faults). A tensor whose bytes are not aligned to its
  // element size (possible only in files from other writers) is copied instead.
  Tensor get(const std::string& name) const;
  // As above; throws InvalidArgument naming the tensor, the file and both shapes when the
  // stored shape differs from `expected_shape`.
  Tensor get(const std::string& name, const Shape& expected_shape) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Writes `tensors` (host, contiguous, unique non-empty names) to `path`, with the header
// padded by spaces to a multiple of 8 bytes and the data ordered by element size, then
// name, so every tensor is aligned. Writes a temporary file in the same directory and
// renames it over `path`, so no partial file is left behind on error. Throws
// InvalidArgument naming the offending tensor, Error naming the file on I/O failure.
void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes `tensors` as shards "model-0000k-of-0000n.safetensors" of at most
// `max_shard_bytes` of tensor data each (a larger tensor gets a shard of its own; tensors
// keep their order), then "model.safetensors.index.json" mapping every name to its shard,
// with "total_size" and `metadata` under "metadata". Always writes an index, even for one
// shard. Creates `dir` if needed. Returns the index path. Same requirements as above.
std::filesystem::path write_sharded_checkpoint(
    const std::filesystem::path& dir, const NamedTensors& tensors, std::uint64_t max_shard_bytes,
    const std::map<std::string, std::string>& metadata = {});

}  // namespace ditserve
