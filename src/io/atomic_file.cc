#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tensor/error.h"

namespace ditserve {

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  std::string leaf = ".";
  leaf += target_.filename().string();
  leaf += ".tmp-XXXXXX";
  const std::string pattern = (target_.parent_path() / leaf).string();
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  fd_ = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd_ < 0) fail("create a temporary file for", errno);
  temp_ = name.data();
  // mkstemp creates 0600; a checkpoint is meant to be readable like any written file.
  if (::fchmod(fd_, 0644) != 0) fail("set permissions of", errno);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

void AtomicFile::fail(const std::string& what, int err) const {
  throw Error("cannot " + what + " " + target_.string() + ": " + std::strerror(err));
}

void AtomicFile::write(const void* data, std::size_t bytes) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write", errno);
    p += n;
    bytes -= static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail("flush", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("close", errno);
  if (::rename(temp_.c_str(), target_.c_str()) != 0) fail("rename a temporary file onto", errno);
  committed_ = true;
}

}  // namespace ditserve
