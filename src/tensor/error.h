#pragma once
// Errors carry their context (which tensor, which file, which field) in the message.
// Every layer throws ditserve::Error (or a subclass) for bad input and failed calls.

#include <stdexcept>
#include <string>

namespace ditserve {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Bad input from a user or a file: the message names the offending field.
class InvalidArgument : public Error {
 public:
  explicit InvalidArgument(const std::string& message) : Error(message) {}
};

}  // namespace ditserve

// Throws InvalidArgument with the streamed message when cond is false.
#define DITSERVE_CHECK(cond, ...)                                               \
  do {                                                                          \
    if (!(cond)) ::ditserve::detail::throw_check_failure(#cond, __VA_ARGS__);   \
  } while (0)

#include <sstream>
namespace ditserve::detail {
template <typename... Parts>
[[noreturn]] void throw_check_failure(const char* cond, const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw InvalidArgument(os.str());
}
}  // namespace ditserve::detail
