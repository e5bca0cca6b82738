#pragma once
// A whole file mapped read-only into memory. Tensors that alias a checkpoint hold a
// shared_ptr to it, so the mapping outlives the SafetensorsFile that created it.

#include <cstddef>
#include <filesystem>

namespace ditserve {

class MappedFile {
 public:
  // Throws Error naming the path when it is missing, not a regular file, or unmappable.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // nullptr for an empty file. Pages are read from disk on first touch.
  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace ditserve
