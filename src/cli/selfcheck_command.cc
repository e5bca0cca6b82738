#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "kernels/selfcheck.h"
#include "tensor/error.h"

namespace ditserve::cli {

void add_selfcheck_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "selfcheck", "Run known-answer checks of every op family on each device present");
  cmd->callback([] {
    std::vector<Device> devices{Device::cpu()};
    for (int i = 0; i < cuda_device_count(); ++i) devices.push_back(Device::cuda(i));
    int failures = 0, total = 0;
    for (const Device& device : devices) {
      auto be = make_backend(device);
      for (const SelfCheckResult& r : run_self_check(*be)) {
        ++total;
        if (!r.passed()) ++failures;
        std::printf("%-8s %-60s %s", device.str().c_str(), r.name.c_str(),
                    r.passed() ? "ok" : "FAILED");
        if (!r.error.empty()) std::printf(" (%s)", r.error.c_str());
        else if (!r.passed()) std::printf(" (max error %.3g > %.3g)", r.max_error, r.tolerance);
        std::printf("\n");
      }
    }
    std::printf("selfcheck: %d of %d checks passed\n", total - failures, total);
    if (failures > 0) throw Error("selfcheck: " + std::to_string(failures) + " check(s) failed");
  });
}

}  // namespace ditserve::cli
