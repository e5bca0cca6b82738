#include "runtime/state_copies.h"

#include <memory>

namespace ditserve::runtime {

namespace {

std::unique_ptr<Backend> host_backend() { return make_backend(Device::cpu()); }

}  // namespace

GenerationState host_copy(const GenerationState& state, Backend& from) {
  GenerationState copy = state;
  const std::unique_ptr<Backend> host = host_backend();
  copy.move_to(from, *host);
  return copy;
}

GenerationState device_copy(const GenerationState& host_state, Backend& to) {
  GenerationState copy = host_state;
  const std::unique_ptr<Backend> host = host_backend();
  copy.move_to(*host, to);
  return copy;
}

}  // namespace ditserve::runtime
