#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tensor/error.h"

namespace ditserve {
namespace {

[[noreturn]] void throw_errno(const std::filesystem::path& path, const char* what, int err) {
  throw Error("cannot " + std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

// Closes the descriptor on every exit path; the mapping stays valid after close.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno(path, "open", errno);
  const FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(path, "stat", errno);
  if (!S_ISREG(st.st_mode)) throw Error("cannot open " + path.string() + ": not a regular file");
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size > 0) {
    void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) throw_errno(path, "mmap", errno);
    data_ = static_cast<const std::byte*>(mapped);
    size_ = size;
  }
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace ditserve
