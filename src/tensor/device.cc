#include "tensor/device.h"

#include <charconv>

#include "tensor/error.h"

namespace ditserve {

Device Device::parse(std::string_view text) {
  const auto colon = text.find(':');
  const std::string_view kind = text.substr(0, colon);
  int index = 0;
  if (colon != std::string_view::npos) {
    const std::string_view digits = text.substr(colon + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || index < 0) {
      throw InvalidArgument("device '" + std::string(text) +
                            "': index must be a non-negative integer (e.g. cuda:0)");
    }
  }
  if (kind == "cpu") return Device::cpu(index);
  if (kind == "cuda") return Device::cuda(index);
  throw InvalidArgument("device '" + std::string(text) + "': kind must be cpu or cuda");
}

std::string Device::str() const {
  return (is_cpu() ? "cpu:" : "cuda:") + std::to_string(index);
}

}  // namespace ditserve
