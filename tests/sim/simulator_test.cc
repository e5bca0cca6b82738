#include "sim/simulator.h"

#include <chrono>

#include <gtest/gtest.h>

#include "sched/error.h"
#include "sched/test_profiles.h"
#include "sim/report.h"
#include "sim/workload.h"

namespace ditserve::sim {
namespace {

using sched::Event;
using sched::EventKind;

std::vector<sched::RequestSpec> workload(const sched::Profile& p, double rate, int count,
                                         std::uint64_t seed, Arrivals arrivals = Arrivals::kPoisson) {
  WorkloadSpec w;
  w.arrivals = arrivals;
  w.rate = rate;
  w.count = count;
  w.mix = parse_mix("uniform", p);
  w.steps = 12;
  w.seed = seed;
  return generate(w, p);
}

Event device_event(EventKind kind, double t, int device) {
  Event e;
  e.kind = kind;
  e.time = t;
  e.device = device;
  return e;
}

const char* kPolicies[] = {"static:1", "static:2", "static-best", "ddit", "tetriserve", "elastic"};

// Invariants (no device in two groups, no request lost, time monotone) at every event, on
// random bursty workloads with noise and a device that fails and comes back.
TEST(Simulator, RandomSimulationsKeepEveryInvariantAndFinishEveryRequest) {
  const auto p = testing::small_large_profile();
  for (const char* policy : kPolicies)
    for (std::uint64_t seed = 1; seed <= 3; ++seed)
      for (int devices : {4, 8}) {
        SimOptions o;
        o.devices = devices;
        o.seed = seed;
        o.noise_cv = 0.2;
        o.check_invariants = true;
        o.device_events = {device_event(EventKind::kDeviceLost, 3.0, 1),
                           device_event(EventKind::kDeviceAdded, 9.0, 1)};
        const auto w = workload(p, 1.5 * devices / 4, 120, seed, Arrivals::kGamma);
        const SimResult r = simulate(p, policy, w, o);
        ASSERT_EQ(r.requests.size(), w.size()) << policy;
        for (const auto& rec : r.requests) {
          EXPECT_TRUE(rec.completed) << policy << " seed " << seed << ": " << rec.reject_reason;
          EXPECT_GE(rec.finish, rec.arrival);
        }
        long steps = 0;
        for (const auto& [k, n] : r.dop_steps) steps += n;
        EXPECT_GE(steps, 12L * static_cast<long>(w.size())) << policy;  // aborted steps rerun
      }
}

// Under overload, the requests marked priority 1 wait far less than the rest, whatever
// the policy (docs/SCHEDULING.md, "Priority").
TEST(Simulator, HigherPriorityRequestsWaitLessUnderLoad) {
  const auto p = testing::small_large_profile();
  auto w = workload(p, 6, 200, 4);
  for (std::size_t i = 0; i < w.size(); i += 4) w[i].priority = 1;
  SimOptions o;
  o.devices = 4;
  o.check_invariants = true;
  for (const char* policy : kPolicies) {
    const SimResult r = simulate(p, policy, w, o);
    double wait[2] = {0, 0};
    int count[2] = {0, 0};
    for (std::size_t i = 0; i < r.requests.size(); ++i) {
      const RequestRecord& rec = r.requests[i];
      ASSERT_TRUE(rec.completed) << policy;
      const int high = i % 4 == 0;
      wait[high] += rec.latency() - rec.service_s;
      ++count[high];
    }
    const double others = wait[0] / count[0], high = wait[1] / count[1];
    EXPECT_GT(others, 1.0) << policy << ": the load must make requests queue";
    EXPECT_LT(high, 0.5 * others) << policy << ": " << high << " s vs " << others << " s";
  }
}

TEST(Simulator, OneRequestTakesExactlyItsProfiledTime) {
  const auto p = testing::small_large_profile();
  sched::RequestSpec r{1, 1, 10, 2.0, sched::kNoDeadline};
  SimOptions o;
  o.devices = 4;
  const SimResult res = simulate(p, "ddit", {r}, o);
  ASSERT_TRUE(res.requests[0].completed);
  // encode + 10 steps at B = 4 + decode on one device; no moves.
  EXPECT_NEAR(res.requests[0].latency(), 0.010 + 10 * 0.270 + 0.400, 1e-9);
  EXPECT_EQ(res.dop_steps.at(4), 10);
  const SimResult st = simulate(p, "static:2", {r}, o);
  // xDiT-style: DoP 2 for life, VAE on the same two devices.
  EXPECT_NEAR(st.requests[0].latency(), 0.010 + 10 * 0.520 + 0.95 * 0.400, 1e-9);
}

TEST(Simulator, ADeadlineThatCanBeMetIsMet) {
  const auto p = testing::small_large_profile();
  // A large request holds all 4 devices; a small one arrives needing to start within
  // 0.5 s. Elastic preempts the large one at its next step boundary; static:4 cannot.
  std::vector<sched::RequestSpec> w = {{0, 1, 30, 0.0, 100.0}, {1, 0, 10, 1.0, 1.0 + 1.2}};
  SimOptions o;
  o.devices = 4;
  const SimResult e = simulate(p, "elastic", w, o);
  EXPECT_TRUE(e.requests[1].met_slo()) << e.requests[1].latency();
  EXPECT_TRUE(e.requests[0].met_slo());
  const SimResult s = simulate(p, "static:4", w, o);
  EXPECT_FALSE(s.requests[1].met_slo());
}

TEST(Simulator, SameSeedSameResult) {
  const auto p = testing::small_large_profile();
  const auto w = workload(p, 2, 200, 5);
  SimOptions o;
  o.devices = 8;
  o.noise_cv = 0.3;
  const SimResult a = simulate(p, "elastic", w, o), b = simulate(p, "elastic", w, o);
  ASSERT_EQ(a.requests.size(), b.requests.size());
  for (std::size_t i = 0; i < a.requests.size(); ++i) EXPECT_EQ(a.requests[i].finish, b.requests[i].finish);
  o.seed = 6;
  const SimResult c = simulate(p, "elastic", w, o);
  bool differs = false;
  for (std::size_t i = 0; i < a.requests.size(); ++i) differs |= a.requests[i].finish != c.requests[i].finish;
  EXPECT_TRUE(differs);
}

TEST(Simulator, TheHorizonRejectsTheRestWithAReason) {
  const auto p = testing::small_large_profile();
  const auto w = workload(p, 50, 200, 1);
  SimOptions o;
  o.devices = 4;
  o.horizon_s = 2.0;
  const SimResult r = simulate(p, "ddit", w, o);
  ASSERT_EQ(r.requests.size(), w.size());
  int rejected = 0;
  for (const auto& rec : r.requests)
    if (!rec.completed) {
      ++rejected;
      EXPECT_EQ(rec.reject_reason, "the simulation horizon was reached");
    }
  EXPECT_GT(rejected, 0);
  const Summary s = summarise(r, p);
  EXPECT_EQ(s.all.rejected, rejected);
  EXPECT_EQ(s.all.completed + s.all.rejected, static_cast<int>(w.size()));
}

TEST(Simulator, AllDevicesLostRejectsWithAReason) {
  const auto p = testing::small_large_profile();
  SimOptions o;
  o.devices = 4;
  for (int d = 0; d < 4; ++d) o.device_events.push_back(device_event(EventKind::kDeviceLost, 0.0, d));
  const SimResult r = simulate(p, "elastic", workload(p, 1, 5, 1), o);
  for (const auto& rec : r.requests) {
    EXPECT_FALSE(rec.completed);
    EXPECT_NE(rec.reject_reason.find("never scheduled"), std::string::npos);
  }
}

// Devices lost for good that leave static:2 no whole group: what had not finished is
// rejected with the cause at once (not "never scheduled" at the end); ddit runs on.
TEST(Simulator, DevicesLostForGoodRejectWhatThePolicyCanNoLongerRun) {
  const auto p = testing::small_large_profile();
  SimOptions o;
  o.devices = 4;
  o.check_invariants = true;
  for (const int d : {1, 2}) {
    o.device_events.push_back(device_event(EventKind::kDeviceLost, 2.0, d));
    o.device_events.back().for_good = true;
  }
  const auto w = workload(p, 2, 40, 1);
  const SimResult st = simulate(p, "static:2", w, o);
  int completed = 0, rejected = 0;
  for (const auto& rec : st.requests) {
    if (rec.completed) {
      ++completed;
      continue;
    }
    ++rejected;
    EXPECT_EQ(rec.reject_reason,
              "policy static:2 needs a group of 2 devices with all of them in service, none is left "
              "(2 devices in service)");
    EXPECT_GE(rec.finish, 2.0);
    EXPECT_LT(rec.finish - std::max(2.0, rec.arrival), 0.5);  // at the loss, or once encoded
  }
  EXPECT_GT(completed, 0);
  EXPECT_GT(rejected, 0);
  const SimResult dd = simulate(p, "ddit", w, o);
  for (const auto& rec : dd.requests) EXPECT_TRUE(rec.completed) << rec.reject_reason;
}

TEST(Simulator, DopAboveTheDeviceCountIsAnError) {
  const auto p = testing::small_large_profile();  // DoP up to 4
  SimOptions o;
  o.devices = 2;
  EXPECT_THROW(simulate(p, "ddit", workload(p, 1, 5, 1), o), sched::InvalidInput);
}

// 10 000 requests on 128 devices must take under 10 s on one core (measured: well under 1 s).
TEST(Simulator, TenThousandRequestsOn128DevicesInUnderTenSeconds) {
  sched::Profile p = testing::small_large_profile();
  for (auto& s : p.shapes) {
    s.step_s[8] = s.step_s[4] * 0.6;
    s.decode_s[8] = s.decode_s[2];
  }
  const auto w = workload(p, 16, 10000, 3);  // ~80% of what 128 devices sustain
  SimOptions o;
  o.devices = 128;
  for (const char* policy : {"ddit", "tetriserve", "elastic"}) {
    const auto start = std::chrono::steady_clock::now();
    const SimResult r = simulate(p, policy, w, o);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(secs, 10.0) << policy;
    EXPECT_EQ(summarise(r, p).all.completed, 10000) << policy;
  }
}

}  // namespace
}  // namespace ditserve::sim
