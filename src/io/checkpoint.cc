#include "io/checkpoint.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tensor/error.h"

namespace ditserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(),
                                                      suffix) == 0;
}

// The only regular file in `dir` whose name ends with `suffix`; empty when none; throws
// when several compete.
fs::path only_file_ending(const fs::path& dir, std::string_view suffix) {
  std::vector<fs::path> found;
  for (const auto& item : fs::directory_iterator(dir)) {
    if (item.is_regular_file() && ends_with(item.path().filename().string(), suffix)) {
      found.push_back(item.path());
    }
  }
  if (found.size() > 1) {
    std::ostringstream names;
    for (const auto& p : found) names << ' ' << p.filename().string();
    throw InvalidArgument("checkpoint directory " + dir.string() + " holds several *" +
                          std::string(suffix) + " files:" + names.str());
  }
  return found.empty() ? fs::path() : found.front();
}

fs::path resolve(const fs::path& path) {
  std::error_code error;
  if (!fs::is_directory(path, error)) return path;
  if (fs::is_regular_file(path / "model.safetensors.index.json", error)) {
    return path / "model.safetensors.index.json";
  }
  if (fs::path index = only_file_ending(path, ".safetensors.index.json"); !index.empty()) {
    return index;
  }
  if (fs::is_regular_file(path / "model.safetensors", error)) return path / "model.safetensors";
  if (fs::path single = only_file_ending(path, ".safetensors"); !single.empty()) return single;
  throw InvalidArgument("checkpoint directory " + path.string() +
                        " holds no .safetensors file and no *.safetensors.index.json");
}

json read_index(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open checkpoint index " + path.string());
  json index;
  try {
    index = json::parse(in);
  } catch (const json::exception& e) {
    throw InvalidArgument(path.string() + ": index is not valid JSON: " + e.what());
  }
  DITSERVE_CHECK(index.is_object(), path.string(), ": index is not a JSON object");
  const auto map = index.find("weight_map");
  DITSERVE_CHECK(map != index.end() && map->is_object(), path.string(),
                 ": index has no \"weight_map\" object");
  for (const auto& [name, shard] : map->items()) {
    DITSERVE_CHECK(shard.is_string(), path.string(), ": weight_map entry for tensor '", name,
                   "' is ", shard.dump(), ", not a shard file name");
  }
  return *map;
}

}  // namespace

Checkpoint::Checkpoint(const fs::path& path) : path_(resolve(path)) {
  if (!ends_with(path_.filename().string(), ".json")) {
    files_.emplace_back(path_);
    for (const std::string& name : files_.front().names()) file_index_.emplace(name, 0);
    return;
  }
  const json weight_map = read_index(path_);
  const std::string index = path_.string();
  std::map<std::string, std::size_t> shard_position;  // shard file name -> files_ position
  for (const auto& [name, shard_value] : weight_map.items()) {
    const auto& shard = shard_value.get_ref<const std::string&>();
    auto [it, added] = shard_position.emplace(shard, files_.size());
    if (added) {
      const fs::path shard_path = path_.parent_path() / shard;
      std::error_code error;
      DITSERVE_CHECK(fs::is_regular_file(shard_path, error), index, " maps tensor '", name,
                     "' to shard ", shard, ", which is missing (", shard_path.string(), ")");
      files_.emplace_back(shard_path);
    }
    DITSERVE_CHECK(files_[it->second].contains(name), index, " maps tensor '", name,
                   "' to shard ", shard, ", which does not contain it");
    file_index_.emplace(name, it->second);
  }
  // A tensor stored in two shards means a broken writer: which copy is meant is unknowable.
  std::map<std::string, std::size_t> stored_in;
  for (std::size_t i = 0; i < files_.size(); ++i) {
    for (const std::string& name : files_[i].names()) {
      const auto [it, added] = stored_in.emplace(name, i);
      DITSERVE_CHECK(added, index, ": tensor '", name, "' is stored in both shard ",
                     files_[it->second].path().filename().string(), " and shard ",
                     files_[i].path().filename().string());
    }
  }
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> names;
  names.reserve(file_index_.size());
  for (const auto& [name, position] : file_index_) names.push_back(name);
  return names;
}

bool Checkpoint::contains(const std::string& name) const { return file_index_.contains(name); }

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  const auto it = file_index_.find(name);
  DITSERVE_CHECK(it != file_index_.end(), "tensor '", name, "' not found in ", path_.string());
  return files_[it->second];
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  return file_of(name).info(name);
}

Tensor Checkpoint::get(const std::string& name) const { return file_of(name).get(name); }

Tensor Checkpoint::get(const std::string& name, const Shape& expected_shape) const {
  return file_of(name).get(name, expected_shape);
}

}  // namespace ditserve
