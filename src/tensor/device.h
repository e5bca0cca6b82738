#pragma once
#include <compare>
#include <string>
#include <string_view>

namespace ditserve {

enum class DeviceKind { cpu, cuda };

// A device is a CUDA GPU or a CPU worker ("cpu:N"; tests and GPU-less machines run
// several CPU devices, one worker thread each). Plain value type.
struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;

  static Device cpu(int index = 0) { return {DeviceKind::cpu, index}; }
  static Device cuda(int index = 0) { return {DeviceKind::cuda, index}; }
  // "cpu", "cpu:3", "cuda", "cuda:1"; throws InvalidArgument naming the text otherwise.
  static Device parse(std::string_view text);

  bool is_cpu() const { return kind == DeviceKind::cpu; }
  bool is_cuda() const { return kind == DeviceKind::cuda; }
  std::string str() const;
  auto operator<=>(const Device&) const = default;
};

}  // namespace ditserve
