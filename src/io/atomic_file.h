#pragma once
// Writing a file so that readers see either the old contents or the complete new ones.

#include <cstddef>
#include <filesystem>
#include <string>

namespace ditserve {

// A temporary file beside `target`, renamed over it by commit(). Destroyed without a
// commit (e.g. during an exception), it removes the temporary file. Every failure throws
// Error naming `target`.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t bytes);
  // Flushes to disk, closes and renames. REQUIRES: called at most once.
  void commit();

 private:
  [[noreturn]] void fail(const std::string& what, int err) const;

  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace ditserve
