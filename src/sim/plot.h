#pragma once
// Plain SVG line charts for the reports (no plotting library on the machine): the latency
// CDF per policy, and a metric (SLO attainment, p99) against the arrival rate.

#include <string>
#include <utility>
#include <vector>

namespace ditserve::sim {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in order
};

struct Chart {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_x = false;
  std::vector<Series> series;
};

std::string render_svg(const Chart& chart);
// The empirical CDF of each policy's latencies (seconds) as a Series.
Series cdf_series(const std::string& name, std::vector<double> latencies);
void write_file(const std::string& path, const std::string& text);

}  // namespace ditserve::sim
