#include <iostream>

#include "cli/commands.h"
#include "tensor/error.h"

int main(int argc, char** argv) {
  CLI::App app{"ditserve: serving diffusion transformers for video and image generation"};
  app.set_version_flag("--version", std::string("ditserve ") + DITSERVE_VERSION);
  app.require_subcommand(1);
  ditserve::cli::add_bench_command(app, argc, argv);
  ditserve::cli::add_devices_command(app);
  ditserve::cli::add_generate_command(app);
  ditserve::cli::add_make_weights_command(app);
  ditserve::cli::add_profile_command(app);
  ditserve::cli::add_selfcheck_command(app);
  ditserve::cli::add_serve_command(app);
  ditserve::cli::add_simulate_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ditserve::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
