#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/safetensors_dtype.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using json = nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";

// Everything that can be wrong with the input, checked before any file is touched.
void check_tensors(const std::filesystem::path& path, const NamedTensors& tensors) {
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    const std::string where = "writing " + path.string() + ": tensor '" + name + "'";
    DITSERVE_CHECK(!name.empty(), "writing ", path.string(), ": a tensor has an empty name");
    DITSERVE_CHECK(name != "__metadata__", where, ": the name is reserved for metadata");
    DITSERVE_CHECK(seen.insert(name).second, where, ": the name occurs twice");
    DITSERVE_CHECK(tensor.defined(), where, " is undefined");
    DITSERVE_CHECK(tensor.device().is_cpu(), where, " is ", tensor.describe(),
                   ", not on the host");
    DITSERVE_CHECK(tensor.is_contiguous(), where, " (", tensor.describe(),
                   ") is not contiguous");
  }
}

// Data order of the reference writer: larger elements first, then by name, so that every
// tensor starts at a multiple of its element size.
std::vector<const std::pair<std::string, Tensor>*> data_order(const NamedTensors& tensors) {
  std::vector<const std::pair<std::string, Tensor>*> order;
  for (const auto& named : tensors) order.push_back(&named);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    const std::size_t sa = dtype_size(a->second.dtype()), sb = dtype_size(b->second.dtype());
    return sa != sb ? sa > sb : a->first < b->first;
  });
  return order;
}

void write_checked(const std::filesystem::path& path, const NamedTensors& tensors,
                   const std::map<std::string, std::string>& metadata) {
  const auto order = data_order(tensors);
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto* named : order) {
    const Tensor& t = named->second;
    header[named->first] = {{"dtype", std::string(safetensors_dtype_name(t.dtype()))},
                            {"shape", t.shape()},
                            {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::uint64_t length = text.size();  // little-endian host (see the reader)

  AtomicFile file(path);
  file.write(&length, sizeof(length));
  file.write(text.data(), text.size());
  for (const auto* named : order) {
    if (named->second.nbytes() > 0) file.write(named->second.raw_data(), named->second.nbytes());
  }
  file.commit();
}

std::string shard_name(std::size_t k, std::size_t n) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", k, n);
  return name;
}

}  // namespace

void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  check_tensors(path, tensors);
  write_checked(path, tensors, metadata);
}

std::filesystem::path write_sharded_checkpoint(
    const std::filesystem::path& dir, const NamedTensors& tensors, std::uint64_t max_shard_bytes,
    const std::map<std::string, std::string>& metadata) {
  const std::filesystem::path index_path = dir / kIndexName;
  check_tensors(index_path, tensors);
  DITSERVE_CHECK(max_shard_bytes > 0, "writing ", index_path.string(),
                 ": max_shard_bytes must be positive");

  std::vector<NamedTensors> shards;
  std::uint64_t shard_bytes = 0, total_bytes = 0;
  for (const auto& named : tensors) {
    const std::uint64_t bytes = named.second.nbytes();
    if (shards.empty() || (shard_bytes > 0 && shard_bytes + bytes > max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(named);
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  if (shards.empty()) shards.emplace_back();  // an empty checkpoint is still a checkpoint

  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) throw Error("cannot create directory " + dir.string() + ": " + error.message());

  json index = {{"metadata", metadata}, {"weight_map", json::object()}};
  index["metadata"]["total_size"] = total_bytes;
  for (std::size_t k = 0; k < shards.size(); ++k) {
    const std::string name = shard_name(k + 1, shards.size());
    write_checked(dir / name, shards[k], metadata);
    for (const auto& named : shards[k]) index["weight_map"][named.first] = name;
  }
  const std::string text = index.dump(2) + "\n";
  AtomicFile file(index_path);
  file.write(text.data(), text.size());
  file.commit();
  return index_path;
}

}  // namespace ditserve
