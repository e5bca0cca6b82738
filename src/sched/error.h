#pragma once
// sched/ and sim/ may not include engine headers (tensor/error.h among them), so they
// throw these. Both derive from std::invalid_argument / std::runtime_error, which the CLI
// prints on one line; the message always names the file, line or field at fault.

#include <sstream>
#include <stdexcept>
#include <string>

namespace ditserve::sched {

// Bad input: a malformed profile or trace, an impossible option.
class InvalidInput : public std::invalid_argument {
 public:
  explicit InvalidInput(const std::string& message) : std::invalid_argument(message) {}
};

// A broken contract inside the scheduler: a policy emitted an impossible action, or an
// invariant (one device in two groups, a request lost, time going backwards) failed.
class SchedulerBug : public std::logic_error {
 public:
  explicit SchedulerBug(const std::string& message) : std::logic_error(message) {}
};

template <typename E, typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw E(os.str());
}

}  // namespace ditserve::sched
