#pragma once
// Each subcommand of the ditserve executable lives in its own file and registers itself
// here. A command's callback throws ditserve::Error for failures; main() prints the
// message on one line and exits non-zero.

#include <CLI/CLI.hpp>

namespace ditserve::cli {

// `bench` records its own command line in its JSON.
void add_bench_command(CLI::App& app, int argc, char** argv);
void add_devices_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_make_weights_command(CLI::App& app);
void add_profile_command(CLI::App& app);
void add_selfcheck_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_simulate_command(CLI::App& app);

}  // namespace ditserve::cli
