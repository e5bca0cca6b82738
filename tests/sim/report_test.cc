#include "sim/report.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sched/test_profiles.h"
#include "sim/plot.h"

namespace ditserve::sim {
namespace {

RequestRecord record(int shape, double arrival, double finish, double deadline, double service,
                     bool completed = true) {
  RequestRecord r;
  r.shape = shape;
  r.arrival = arrival;
  r.finish = finish;
  r.deadline = deadline;
  r.service_s = service;
  r.completed = completed;
  if (!completed) r.reject_reason = "horizon";
  return r;
}

TEST(Report, PercentilesAreNearestRank) {
  const std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(percentile(v, 0.5), 5);
  EXPECT_EQ(percentile(v, 0.9), 9);
  EXPECT_EQ(percentile(v, 0.99), 10);
  EXPECT_EQ(percentile(v, 0.0), 1);
}

TEST(Report, SummaryCountsSloQueueingUtilisationAndShapes) {
  const auto p = testing::small_large_profile();
  SimResult r;
  r.policy = "x";
  r.devices = 2;
  r.makespan = 10;
  r.busy_device_s = 15;
  r.dop_steps = {{1, 30}, {2, 10}};
  r.requests = {record(0, 0, 2, 3, 1.5), record(0, 1, 5, 3, 2), record(1, 2, 10, 20, 6),
                record(1, 3, 0, 20, 0, false)};
  const Summary s = summarise(r, p);
  EXPECT_EQ(s.all.requests, 4);
  EXPECT_EQ(s.all.completed, 3);
  EXPECT_EQ(s.all.rejected, 1);
  EXPECT_DOUBLE_EQ(s.all.slo_attainment, 0.5);  // 2 of 4 by their deadline
  EXPECT_DOUBLE_EQ(s.all.mean, (2.0 + 4.0 + 8.0) / 3);
  EXPECT_DOUBLE_EQ(s.all.p99, 8.0);
  EXPECT_DOUBLE_EQ(s.all.mean_queue_s, (0.5 + 2.0 + 2.0) / 3);
  EXPECT_DOUBLE_EQ(s.throughput, 0.3);
  EXPECT_DOUBLE_EQ(s.utilisation, 0.75);
  EXPECT_EQ(s.per_shape.at("small").requests, 2);
  EXPECT_DOUBLE_EQ(s.per_shape.at("small").slo_attainment, 0.5);
  EXPECT_EQ(s.reject_reasons.at("horizon"), 1);
  const auto j = to_json(s);
  EXPECT_EQ(j["latency"]["completed"], 3);
  EXPECT_EQ(j["dop_steps"]["2"], 10);
  const std::string table = format_table({s});
  EXPECT_NE(table.find("1:75% 2:25%"), std::string::npos) << table;
}

TEST(Plot, CdfRisesToOneAndTheSvgNamesEverySeries) {
  const Series cdf = cdf_series("ddit", {3, 1, 2});
  ASSERT_FALSE(cdf.points.empty());
  EXPECT_DOUBLE_EQ(cdf.points.front().first, 1);
  EXPECT_DOUBLE_EQ(cdf.points.back().second, 1.0);
  for (std::size_t i = 1; i < cdf.points.size(); ++i) {
    EXPECT_GE(cdf.points[i].first, cdf.points[i - 1].first);
    EXPECT_GE(cdf.points[i].second, cdf.points[i - 1].second);
  }
  const Series big = cdf_series("many", std::vector<double>(10000, 1.0));
  EXPECT_LE(big.points.size(), 1000u);
  const std::string svg = render_svg({"t <1>", "x", "y", true, {cdf, {"elastic", {{1, 0.5}, {2, 1}}}}});
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find(">ddit<"), std::string::npos);
  EXPECT_NE(svg.find(">elastic<"), std::string::npos);
  EXPECT_NE(svg.find("t &lt;1&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

}  // namespace
}  // namespace ditserve::sim
