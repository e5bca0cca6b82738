#include <iostream>

#include "cli/commands.h"
#include "kernels/backend.h"

namespace ditserve::cli {

void add_devices_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("devices", "List the devices this build can run on");
  cmd->callback([] {
    std::cout << "cpu:0 (host)\n";
    const int gpus = cuda_device_count();
    for (int i = 0; i < gpus; ++i) std::cout << "cuda:" << i << "\n";
    if (!built_with_cuda()) std::cout << "(built without the CUDA backend)\n";
    else if (gpus == 0) std::cout << "(CUDA backend built; no GPU present)\n";
  });
}

}  // namespace ditserve::cli
