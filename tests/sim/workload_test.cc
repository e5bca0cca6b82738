#include "sim/workload.h"

#include <cmath>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "sched/error.h"
#include "sched/test_profiles.h"

namespace ditserve::sim {
namespace {

using sched::InvalidInput;

double gap_cv(const std::vector<sched::RequestSpec>& rs) {
  std::vector<double> gaps;
  for (std::size_t i = 1; i < rs.size(); ++i) gaps.push_back(rs[i].arrival - rs[i - 1].arrival);
  double mean = 0, var = 0;
  for (double g : gaps) mean += g;
  mean /= gaps.size();
  for (double g : gaps) var += (g - mean) * (g - mean);
  return std::sqrt(var / gaps.size()) / mean;
}

WorkloadSpec spec_for(const sched::Profile& p) {
  WorkloadSpec w;
  w.rate = 2;
  w.duration_s = 2000;
  w.mix = parse_mix("small:3,large:1", p);
  w.steps = 20;
  return w;
}

TEST(Workload, PoissonArrivalsHaveTheRateAndUnitVariation) {
  const auto p = testing::small_large_profile();
  const auto rs = generate(spec_for(p), p);
  EXPECT_NEAR(rs.size(), 4000.0, 200.0);
  EXPECT_NEAR(gap_cv(rs), 1.0, 0.1);
  int small = 0;
  for (const auto& r : rs) small += r.shape == 0;
  EXPECT_NEAR(static_cast<double>(small) / rs.size(), 0.75, 0.03);
  for (const auto& r : rs) {
    EXPECT_EQ(r.steps, 20);
    EXPECT_NEAR(r.deadline - r.arrival, 2 * p.shape(r.shape).solo_latency(20), 1e-9);
  }
}

TEST(Workload, GammaArrivalsAreBurstyAtTheSameRate) {
  const auto p = testing::small_large_profile();
  WorkloadSpec w = spec_for(p);
  w.arrivals = Arrivals::kGamma;
  w.burstiness = 3;
  w.duration_s = 20000;
  const auto rs = generate(w, p);
  EXPECT_NEAR(rs.size(), 40000.0, 6000.0);
  EXPECT_NEAR(gap_cv(rs), 3.0, 0.5);
}

TEST(Workload, SameSeedSameWorkloadAndCountLimit) {
  const auto p = testing::small_large_profile();
  WorkloadSpec w = spec_for(p);
  w.duration_s = 0;
  w.count = 50;
  const auto a = generate(w, p), b = generate(w, p);
  ASSERT_EQ(a.size(), 50u);
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].arrival, b[i].arrival);
    EXPECT_EQ(a[i].shape, b[i].shape);
  }
  w.seed = 2;
  EXPECT_NE(generate(w, p)[0].arrival, a[0].arrival);
}

TEST(Workload, MixPresetsAndErrors) {
  const auto p = testing::small_large_profile();
  EXPECT_EQ(parse_mix("uniform", p).size(), 2u);
  const auto skew = parse_mix("skewed", p);
  EXPECT_DOUBLE_EQ(skew[0].weight, skew[1].weight);  // same h x w x frames in this profile
  EXPECT_THROW(parse_mix("tiny:1", p), InvalidInput);
  EXPECT_THROW(parse_mix("small:x", p), InvalidInput);
  EXPECT_THROW(parse_mix("small:-1", p), InvalidInput);
  WorkloadSpec w = spec_for(p);
  w.duration_s = 0;
  EXPECT_THROW(generate(w, p), InvalidInput);  // no limit
}

// name:weight:steps gives one shape its own step count (Wan's 50 beside Open-Sora's 30);
// the others keep the workload's, and each deadline follows its own steps.
TEST(Workload, MixEntriesMayCarryTheirOwnSteps) {
  const auto p = testing::small_large_profile();
  const auto mix = parse_mix("small:3,large:1:50", p);
  ASSERT_EQ(mix.size(), 2u);
  EXPECT_EQ(mix[0].steps, 0);
  EXPECT_DOUBLE_EQ(mix[1].weight, 1.0);
  EXPECT_EQ(mix[1].steps, 50);
  WorkloadSpec w = spec_for(p);
  w.mix = mix;
  const auto rs = generate(w, p);
  int small = 0, large = 0;
  for (const auto& r : rs) {
    const bool is_large = r.shape == p.shape_index("large", "test");
    EXPECT_EQ(r.steps, is_large ? 50 : w.steps);
    EXPECT_NEAR(r.deadline - r.arrival, w.slo_scale * p.shape(r.shape).solo_latency(r.steps),
                1e-9);
    (is_large ? large : small) += 1;
  }
  EXPECT_GT(small, 0);
  EXPECT_GT(large, 0);
  for (const char* bad : {"large:1:0", "large:1:x", "large:1:2.5", "large::50", "large:1:"}) {
    try {
      parse_mix(bad, p);
      ADD_FAILURE() << bad << " accepted";
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

std::string write(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::string trace_error(const std::string& text) {
  try {
    load_trace(write("bad.jsonl", text), testing::small_large_profile(), 2.0);
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "";
}

TEST(Trace, RoundTripsAndDefaultsTheDeadline) {
  const auto p = testing::small_large_profile();
  const std::string path = write("t.jsonl",
      "{\"id\": 4, \"arrival_s\": 0.5, \"shape\": \"large\", \"steps\": 30, \"deadline_s\": 12}\n"
      "\n"
      "{\"id\": 9, \"arrival_s\": 1.5, \"shape\": \"small\", \"steps\": 10}\n");
  const auto rs = load_trace(path, p, 3.0);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].id, 4);
  EXPECT_DOUBLE_EQ(rs[0].deadline, 12.5);
  EXPECT_DOUBLE_EQ(rs[1].deadline, 1.5 + 3.0 * p.shape(0).solo_latency(10));
  const std::string again = ::testing::TempDir() + "/again.jsonl";
  write_trace(again, rs, p);
  const auto back = load_trace(again, p, 3.0);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].shape, 0);
  EXPECT_NEAR(back[1].deadline, rs[1].deadline, 1e-9);
}

TEST(Trace, PriorityIsOptionalAndRoundTrips) {
  const auto p = testing::small_large_profile();
  const std::string path = write("prio.jsonl",
      "{\"id\": 1, \"arrival_s\": 0, \"shape\": \"small\", \"steps\": 3, \"priority\": 5}\n"
      "{\"id\": 2, \"arrival_s\": 1, \"shape\": \"small\", \"steps\": 3}\n"
      "{\"id\": 3, \"arrival_s\": 2, \"shape\": \"large\", \"steps\": 3, \"priority\": -2}\n");
  const auto rs = load_trace(path, p, 3.0);
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(rs[0].priority, 5);
  EXPECT_EQ(rs[1].priority, 0);  // the default
  EXPECT_EQ(rs[2].priority, -2);
  const std::string again = ::testing::TempDir() + "/prio-again.jsonl";
  write_trace(again, rs, p);
  std::ifstream in(again);
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  EXPECT_NE(first.find("\"priority\":5"), std::string::npos) << first;
  EXPECT_EQ(second.find("priority"), std::string::npos) << second;  // 0 is not written
  const auto back = load_trace(again, p, 3.0);
  ASSERT_EQ(back.size(), 3u);
  for (std::size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(back[i].priority, rs[i].priority);

  const std::string ok = "{\"id\": 1, \"arrival_s\": 0, \"shape\": \"small\", \"steps\": 3}\n";
  for (const char* bad : {"\"high\"", "1.5", "1e12", "18446744073709551615"}) {
    const std::string m = trace_error(ok + "{\"id\": 2, \"arrival_s\": 1, \"shape\": \"small\", \"steps\": 3, "
                                           "\"priority\": " + bad + "}\n");
    EXPECT_NE(m.find(":2: field 'priority' must be an integer"), std::string::npos) << bad << ": " << m;
  }
}

TEST(Trace, MalformedLinesNameTheLineAndField) {
  const std::string ok = "{\"id\": 1, \"arrival_s\": 0, \"shape\": \"small\", \"steps\": 3}\n";
  std::string m = trace_error(ok + "{\"id\": 2, \"arrival_s\": 1,\n");
  EXPECT_NE(m.find("bad.jsonl:2: not valid JSON"), std::string::npos) << m;
  m = trace_error(ok + "{\"id\": 2, \"arrival_s\": 1, \"steps\": 3}\n");
  EXPECT_NE(m.find(":2: missing field 'shape'"), std::string::npos) << m;
  m = trace_error(ok + "{\"id\": 2, \"arrival_s\": 1, \"shape\": \"4k\", \"steps\": 3}\n");
  EXPECT_NE(m.find(":2: field 'shape': shape '4k' is not in the profile"), std::string::npos) << m;
  m = trace_error(ok + "{\"id\": 2, \"arrival_s\": -1, \"shape\": \"small\", \"steps\": 3}\n");
  EXPECT_NE(m.find(":2: field 'arrival_s'"), std::string::npos) << m;
  m = trace_error("{\"id\": 2, \"arrival_s\": 5, \"shape\": \"small\", \"steps\": 3}\n" + ok);
  EXPECT_NE(m.find(":2: field 'arrival_s' goes backwards"), std::string::npos) << m;
  m = trace_error(ok + "{\"id\": 2, \"arrival_s\": 1, \"shape\": \"small\", \"steps\": 0}\n");
  EXPECT_NE(m.find(":2: field 'steps'"), std::string::npos) << m;
  m = trace_error("\n");
  EXPECT_NE(m.find("no requests"), std::string::npos) << m;
}

}  // namespace
}  // namespace ditserve::sim
