#include "sim/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "sched/error.h"

namespace ditserve::sim {
namespace {

constexpr const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

Series cdf_series(const std::string& name, std::vector<double> latencies) {
  std::sort(latencies.begin(), latencies.end());
  Series s{name, {}};
  const std::size_t n = latencies.size();
  // At most ~400 steps: a plot cannot show more, and the file stays small.
  const std::size_t stride = std::max<std::size_t>(1, n / 400);
  for (std::size_t i = 0; i < n; i += stride) {
    const std::size_t j = std::min(n, i + stride);
    s.points.emplace_back(latencies[i], static_cast<double>(i) / n);
    s.points.emplace_back(latencies[j - 1], static_cast<double>(j) / n);
  }
  return s;
}

std::string render_svg(const Chart& chart) {
  const double width = 760, height = 460, left = 70, right = 180, top = 40, bottom = 60;
  const double pw = width - left - right, ph = height - top - bottom;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : chart.series)
    for (const auto& [x, y] : s.points) {
      if (chart.log_x && x <= 0) continue;
      const double xv = chart.log_x ? std::log10(x) : x;
      x0 = std::min(x0, xv), x1 = std::max(x1, xv), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (!chart.log_x) x0 = std::min(x0, 0.0);
  y0 = std::min(y0, 0.0);
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  auto px = [&](double x) { return left + ((chart.log_x ? std::log10(x) : x) - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + ph - (y - y0) / (y1 - y0) * ph; };
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
     << "<text x=\"" << left + pw / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
     << escape(chart.title) << "</text>\n";
  // Axes, ticks and grid.
  for (int i = 0; i <= 5; ++i) {
    const double yv = y0 + (y1 - y0) * i / 5, y = py(yv);
    os << "<line x1=\"" << left << "\" y1=\"" << y << "\" x2=\"" << left + pw << "\" y2=\"" << y
       << "\" stroke=\"#ddd\"/>\n<text x=\"" << left - 6 << "\" y=\"" << y + 4
       << "\" text-anchor=\"end\">" << num(yv) << "</text>\n";
    const double xv = x0 + (x1 - x0) * i / 5;
    const double x = left + pw * i / 5;
    os << "<line x1=\"" << x << "\" y1=\"" << top << "\" x2=\"" << x << "\" y2=\"" << top + ph
       << "\" stroke=\"#ddd\"/>\n<text x=\"" << x << "\" y=\"" << top + ph + 18
       << "\" text-anchor=\"middle\">" << num(chart.log_x ? std::pow(10.0, xv) : xv) << "</text>\n";
  }
  os << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
     << "\" fill=\"none\" stroke=\"black\"/>\n"
     << "<text x=\"" << left + pw / 2 << "\" y=\"" << height - 15 << "\" text-anchor=\"middle\">"
     << escape(chart.x_label) << "</text>\n"
     << "<text transform=\"translate(18," << top + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
     << escape(chart.y_label) << "</text>\n";
  for (std::size_t i = 0; i < chart.series.size(); ++i) {
    const auto& s = chart.series[i];
    const char* colour = kColours[i % std::size(kColours)];
    os << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : s.points)
      if (!chart.log_x || x > 0) os << num(px(x)) << "," << num(py(y)) << " ";
    os << "\"/>\n";
    if (s.points.size() < 30)
      for (const auto& [x, y] : s.points)
        if (!chart.log_x || x > 0)
          os << "<circle cx=\"" << num(px(x)) << "\" cy=\"" << num(py(y)) << "\" r=\"3\" fill=\"" << colour << "\"/>\n";
    const double ly = top + 10 + 20 * i;
    os << "<line x1=\"" << left + pw + 12 << "\" y1=\"" << ly << "\" x2=\"" << left + pw + 36
       << "\" y2=\"" << ly << "\" stroke=\"" << colour << "\" stroke-width=\"3\"/>\n<text x=\""
       << left + pw + 42 << "\" y=\"" << ly + 4 << "\">" << escape(s.name) << "</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  if (!out) sched::fail<sched::InvalidInput>("cannot write '", path, "'");
  out << text;
}

}  // namespace ditserve::sim
