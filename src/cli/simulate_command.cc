// ditserve simulate: run scheduling policies over one workload in the discrete-event
// simulator and compare them (docs/SCHEDULING.md). Several --rate values sweep the load.

#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "sched/error.h"
#include "sched/profile.h"
#include "sim/plot.h"
#include "sim/report.h"
#include "sim/simulator.h"
#include "sim/workload.h"

namespace ditserve::cli {
namespace {

struct SimulateArgs {
  std::string profile;
  std::string policies = "static-best,ddit,tetriserve,elastic";
  int devices = 8;
  int encoders = 1;
  std::vector<double> rates = {0.5};
  double duration = 3600;
  int count = 0;
  std::string arrivals = "poisson";
  double burstiness = 3;
  std::string mix = "uniform";
  int steps = 30;
  double slo_scale = 2;
  std::uint64_t seed = 1;
  double noise = 0;
  double min_gain = sched::kDefaultMinGain;
  double round_ms = 0;
  std::string trace;
  std::string write_trace;
  std::string json_out;
  std::string cdf_svg;
  std::string rate_svg;
  bool per_shape = false;
  bool check_invariants = false;
  std::string command_line;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void run(const SimulateArgs& a) {
  const sched::Profile profile = sched::load_profile(a.profile);
  const std::vector<std::string> policies = split(a.policies);
  if (policies.empty()) sched::fail<sched::InvalidInput>("--policy: no policy given");
  sim::SimOptions options;
  options.devices = a.devices;
  options.encoders = a.encoders;
  options.noise_cv = a.noise;
  options.seed = a.seed;
  options.check_invariants = a.check_invariants;
  options.policy.min_gain = a.min_gain;
  options.policy.round_s = a.round_ms / 1000.0;
  profile.check_fits(a.devices);

  sim::WorkloadSpec spec;
  if (a.arrivals == "poisson") spec.arrivals = sim::Arrivals::kPoisson;
  else if (a.arrivals == "gamma") spec.arrivals = sim::Arrivals::kGamma;
  else sched::fail<sched::InvalidInput>("--arrivals: expected poisson or gamma, got '", a.arrivals, "'");
  spec.burstiness = a.burstiness;
  spec.duration_s = a.count > 0 ? 0 : a.duration;
  spec.count = a.count;
  spec.steps = a.steps;
  spec.slo_scale = a.slo_scale;
  spec.seed = a.seed;
  if (a.trace.empty()) spec.mix = sim::parse_mix(a.mix, profile);

  const std::vector<double> rates = a.trace.empty() ? a.rates : std::vector<double>{0};
  nlohmann::json runs = nlohmann::json::array();
  std::vector<sim::Series> slo_series(policies.size()), p99_series(policies.size());
  std::vector<sim::Series> cdf;
  for (std::size_t ri = 0; ri < rates.size(); ++ri) {
    std::vector<sched::RequestSpec> workload;
    if (a.trace.empty()) {
      spec.rate = rates[ri];
      workload = sim::generate(spec, profile);
    } else {
      workload = sim::load_trace(a.trace, profile, a.slo_scale);
    }
    if (!a.write_trace.empty() && ri == 0) sim::write_trace(a.write_trace, workload, profile);
    std::vector<sim::Summary> rows;
    nlohmann::json results = nlohmann::json::array();
    for (std::size_t pi = 0; pi < policies.size(); ++pi) {
      const sim::SimResult r = sim::simulate(profile, policies[pi], workload, options);
      rows.push_back(sim::summarise(r, profile));
      results.push_back(sim::to_json(rows.back()));
      slo_series[pi].name = p99_series[pi].name = rows.back().policy;
      slo_series[pi].points.emplace_back(rates[ri], rows.back().all.slo_attainment);
      p99_series[pi].points.emplace_back(rates[ri], rows.back().all.p99);
      if (ri + 1 == rates.size()) {
        std::vector<double> lat;
        for (const auto& rec : r.requests)
          if (rec.completed) lat.push_back(rec.latency());
        cdf.push_back(sim::cdf_series(rows.back().policy, lat));
      }
    }
    std::cout << "== " << (a.trace.empty() ? "rate " + std::to_string(rates[ri]) + " req/s" : "trace " + a.trace)
              << ", " << workload.size() << " requests, " << a.devices << " devices, profile "
              << profile.model << " ==\n"
              << sim::format_table(rows);
    if (a.per_shape)
      for (const auto& s : rows) std::cout << s.policy << ":\n" << sim::format_shape_table(s);
    runs.push_back({{"rate_rps", rates[ri]}, {"requests", workload.size()}, {"results", results}});
  }
  if (!a.json_out.empty()) {
    nlohmann::json doc = {
        {"command", a.command_line}, {"profile", a.profile}, {"model", profile.model},
        {"hardware", profile.hardware}, {"devices", a.devices}, {"encoders", a.encoders},
        {"workload", {{"trace", a.trace}, {"arrivals", a.arrivals}, {"burstiness", a.burstiness},
                      {"duration_s", spec.duration_s}, {"count", a.count}, {"mix", a.mix},
                      {"steps", a.steps}, {"slo_scale", a.slo_scale}, {"seed", a.seed},
                      {"noise_cv", a.noise}}},
        {"runs", runs}};
    sim::write_file(a.json_out, doc.dump(2) + "\n");
  }
  const std::string where = a.trace.empty() ? "rate " + std::to_string(rates.back()) : a.trace;
  if (!a.cdf_svg.empty()) {
    sim::Chart chart{"Latency CDF, " + profile.model + ", " + std::to_string(a.devices) +
                         " devices, " + where,
                     "latency (s, log scale)", "fraction of completed requests", true, cdf};
    sim::write_file(a.cdf_svg, sim::render_svg(chart));
  }
  if (!a.rate_svg.empty()) {
    sim::Chart chart{"SLO attainment vs load, " + profile.model + ", " + std::to_string(a.devices) + " devices",
                     "arrival rate (requests/s)", "SLO attainment", false, slo_series};
    sim::write_file(a.rate_svg, sim::render_svg(chart));
    std::string p99_path = a.rate_svg;
    const auto dot = p99_path.rfind(".svg");
    p99_path = (dot == std::string::npos ? p99_path : p99_path.substr(0, dot)) + "-p99.svg";
    sim::Chart p99{"p99 latency vs load, " + profile.model + ", " + std::to_string(a.devices) + " devices",
                   "arrival rate (requests/s)", "p99 latency (s)", false, p99_series};
    sim::write_file(p99_path, sim::render_svg(p99));
  }
}

}  // namespace

void add_simulate_command(CLI::App& app) {
  auto args = std::make_shared<SimulateArgs>();
  CLI::App* cmd = app.add_subcommand("simulate", "Compare scheduling policies in the discrete-event simulator");
  cmd->add_option("--profile", args->profile, "Profile JSON (docs/SCHEDULING.md)")->required();
  cmd->add_option("--policy", args->policies,
                  "Comma-separated: static:K, static-best, ddit, tetriserve[:round_ms], elastic");
  cmd->add_option("--devices", args->devices, "DiT/VAE devices (1 to 1024)")->check(CLI::Range(1, 1024));
  cmd->add_option("--encoders", args->encoders, "Text-encoder devices")->check(CLI::Range(1, 1024));
  cmd->add_option("--rate", args->rates, "Arrival rate(s), requests/s; several sweep the load")->delimiter(',');
  cmd->add_option("--duration", args->duration, "Seconds of arrivals");
  cmd->add_option("--count", args->count, "Number of requests instead of --duration");
  cmd->add_option("--arrivals", args->arrivals, "poisson or gamma (bursty)");
  cmd->add_option("--burstiness", args->burstiness, "Gamma arrivals: coefficient of variation of gaps");
  cmd->add_option("--mix", args->mix, "uniform, skewed, or shape:weight[:steps],...");
  cmd->add_option("--steps", args->steps, "Denoising steps per request");
  cmd->add_option("--slo-scale", args->slo_scale, "Deadline = scale x solo latency on one device");
  cmd->add_option("--seed", args->seed, "Seed of the workload and the noise");
  cmd->add_option("--noise", args->noise, "Coefficient of variation of each step's duration");
  cmd->add_option("--min-gain", args->min_gain, "Optimal DoP: keep doubling while the step gets this much faster");
  cmd->add_option("--round-ms", args->round_ms, "TetriServe round length (default: 5 steps of the smallest shape)");
  cmd->add_option("--trace", args->trace, "Replay this JSONL trace instead of generating");
  cmd->add_option("--write-trace", args->write_trace, "Write the (first) workload as a JSONL trace");
  cmd->add_option("--json", args->json_out, "Write every figure as JSON");
  cmd->add_option("--cdf-svg", args->cdf_svg, "Plot latency CDFs (last rate) as SVG");
  cmd->add_option("--rate-svg", args->rate_svg, "Plot SLO attainment (and p99, *-p99.svg) against rate");
  cmd->add_flag("--per-shape", args->per_shape, "Also print a table per request shape");
  cmd->add_flag("--check-invariants", args->check_invariants, "Check scheduler invariants at every event");
  cmd->callback([args, cmd] {
    std::string line = "ditserve simulate";
    for (const CLI::Option* o : cmd->get_options()) {
      if (o->count() == 0 || o->get_name() == "--help") continue;
      line += " " + o->get_name();
      if (o->get_expected_min() != 0) {
        std::string joined;
        for (const auto& v : o->results()) joined += (joined.empty() ? "" : ",") + v;
        line += " " + joined;
      }
    }
    args->command_line = line;
    run(*args);
  });
}

}  // namespace ditserve::cli
