// GPU benchmark of the group-free collectives: the cost of forming a new DeviceGroup and
// running its first all_to_all against the steady-state all_to_all on a group already
// used, at one 720p STDiT3 activation ([2, 15, 3600, 1152] bf16, frames sharded over the
// group, switched to positions sharded), and the group set-up alone (construct + validate)
// in microseconds. Uses every GPU present (a group of size 1 is a local copy). Prints a
// table and writes JSON with --json PATH. Reports numbers only; correctness is the tests'.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/collectives.h"
#include "comm/fabric.h"
#include "kernels/copy.h"
#include "kernels/cuda/cuda_backend.h"
#include "tensor/cuda/stream.h"

namespace ditserve {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Device milliseconds of fn() across all ranks: every rank's stream starts after rank 0's
// start event and rank 0 stops after every rank's last work. Host time spent inside fn
// (group set-up, launches) shows up too, since the streams are idle while it runs.
double time_ms(Fabric& fabric, const std::vector<int>& ranks, const std::function<void()>& fn) {
  auto& lead = cuda::as_cuda(fabric.device(ranks[0]));
  for (int r : ranks) fabric.device(r).synchronize();
  cuda::Event start(lead.device_index(), true), stop(lead.device_index(), true);
  start.record(lead.stream());
  for (int r : ranks) {
    if (r != ranks[0]) start.block(cuda::as_cuda(fabric.device(r)).stream());
  }
  fn();
  std::vector<std::unique_ptr<cuda::Event>> done;
  for (int r : ranks) {
    if (r == ranks[0]) continue;
    auto& be = cuda::as_cuda(fabric.device(r));
    done.push_back(std::make_unique<cuda::Event>(be.device_index()));
    done.back()->record(be.stream());
    done.back()->block(lead.stream());
  }
  stop.record(lead.stream());
  stop.synchronize();
  return stop.elapsed_ms_since(start);
}

// Sanity check before timing: a small all_to_all (strided views, uneven shards) and an
// all_gather of transposed inputs, across the GPUs in reversed member order, equal the same
// collectives over CPU devices (both the pitched and the staged copy paths).
bool results_match(Fabric& fabric, int gpus) {
  std::vector<std::unique_ptr<Backend>> cpus;
  std::vector<Backend*> raw;
  for (int i = 0; i < gpus; ++i) {
    cpus.push_back(make_backend(Device::cpu(i)));
    raw.push_back(cpus.back().get());
  }
  Fabric host(raw);
  DeviceGroup group;
  for (int i = gpus - 1; i >= 0; --i) group.ranks.push_back(i);
  std::vector<Tensor> on_cpu, on_gpu;
  for (int i = 0; i < gpus; ++i) {
    const int rank = group.ranks[static_cast<std::size_t>(i)];
    Tensor t = host.device(rank).empty({2, i + 1, 2 * gpus + 1, 3}, DType::f32);
    for (std::int64_t e = 0; e < t.numel(); ++e) t.data<float>()[e] = 1000.0f * i + e;
    on_cpu.push_back(t);
    on_gpu.push_back(transfer(host.device(rank), t, fabric.device(rank)));
  }
  const auto sizes = even_split(2 * gpus + 1, gpus);
  const auto want = all_to_all(host, group, on_cpu, 2, sizes, 1);
  const auto got = all_to_all(fabric, group, on_gpu, 2, sizes, 1);
  for (int i = 0; i < gpus; ++i) {
    const int rank = group.ranks[static_cast<std::size_t>(i)];
    const Tensor back = transfer(fabric.device(rank), got[static_cast<std::size_t>(i)],
                                 host.device(rank));
    const Tensor& ref = want[static_cast<std::size_t>(i)];
    if (back.shape() != ref.shape()) return false;
    for (std::int64_t e = 0; e < ref.numel(); ++e) {
      if (back.data<float>()[e] != ref.data<float>()[e]) return false;
    }
  }
  // Transposed inputs (no contiguous inner dim): the staged path.
  std::vector<Tensor> t_cpu, t_gpu;
  for (int i = 0; i < gpus; ++i) {
    t_cpu.push_back(on_cpu[static_cast<std::size_t>(i)].transpose(2, 3));
    t_gpu.push_back(on_gpu[static_cast<std::size_t>(i)].transpose(2, 3));
  }
  const auto want_t = all_gather(host, group, t_cpu, 1);
  const auto got_t = all_gather(fabric, group, t_gpu, 1);
  for (int i = 0; i < gpus; ++i) {
    const int rank = group.ranks[static_cast<std::size_t>(i)];
    const Tensor back = transfer(fabric.device(rank), got_t[static_cast<std::size_t>(i)],
                                 host.device(rank));
    const Tensor& ref = want_t[static_cast<std::size_t>(i)];
    if (back.shape() != ref.shape()) return false;
    for (std::int64_t e = 0; e < ref.numel(); ++e) {
      if (back.data<float>()[e] != ref.data<float>()[e]) return false;
    }
  }
  return true;
}

}  // namespace
}  // namespace ditserve

int main(int argc, char** argv) {
  using namespace ditserve;
  std::string json_path;
  int reps = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::stoi(argv[++i]));
    } else {
      std::cerr << "usage: comm_bench [--json PATH] [--reps N]\n";
      return 2;
    }
  }
  const int gpus = cuda_device_count();
  if (gpus < 1) {
    std::cerr << "comm_bench: no CUDA GPU\n";
    return 1;
  }
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<Backend*> raw;
  for (int i = 0; i < gpus; ++i) {
    backends.push_back(make_backend(Device::cuda(i)));
    raw.push_back(backends.back().get());
  }
  const auto fabric_start = std::chrono::steady_clock::now();
  Fabric fabric(raw);
  const double fabric_us = std::chrono::duration<double, std::micro>(
                               std::chrono::steady_clock::now() - fabric_start).count();

  const bool correct = results_match(fabric, gpus);
  std::printf("all_to_all across %d GPU(s) matches the CPU devices: %s\n", gpus,
              correct ? "yes" : "NO");
  if (!correct) return 1;

  // Which pairs the Fabric could enable peer access for (copies between other pairs are
  // staged through the host by the driver).
  nlohmann::json peer = nlohmann::json::array();
  for (int a = 0; a < gpus; ++a) {
    for (int b = 0; b < gpus; ++b) {
      int can = 0;
      if (a != b && cudaDeviceCanAccessPeer(&can, a, b) == cudaSuccess) {
        peer.push_back({{"from", a}, {"to", b}, {"can_access_peer", can != 0}});
        std::printf("peer access %d -> %d: %s\n", a, b, can ? "yes" : "no");
      }
    }
  }

  const Shape full{2, 15, 3600, 1152};
  nlohmann::json results = nlohmann::json::array();
  std::printf("%-6s %14s %14s %14s %12s %12s\n", "group", "first_ms", "new_group_ms",
              "steady_ms", "setup_us", "raw_peer_ms");
  for (int k = 1; k <= gpus; k *= 2) {
    std::vector<int> ranks(static_cast<std::size_t>(k));
    std::iota(ranks.begin(), ranks.end(), 0);
    const auto frames = even_split(full[1], k);
    const auto positions = even_split(full[2], k);
    std::vector<Tensor> inputs;
    for (int i = 0; i < k; ++i) {
      inputs.push_back(fabric.device(i).empty({full[0], frames[static_cast<std::size_t>(i)],
                                               full[2], full[3]}, DType::bf16));
    }
    auto run = [&](const DeviceGroup& group) {
      std::vector<Tensor> in(inputs.size());
      for (int i = 0; i < k; ++i) {
        in[static_cast<std::size_t>(i)] = inputs[static_cast<std::size_t>(group.ranks[static_cast<std::size_t>(i)])];
      }
      (void)all_to_all(fabric, group, in, 2, positions, 1);
    };
    // The very first all_to_all on these GPUs (allocator and copy engines cold).
    const double first_ms = time_ms(fabric, ranks, [&] { run(DeviceGroup{ranks}); });
    // A new group each time (rotating the member order, so consecutive groups differ),
    // formed, validated and used once, inside the timed region.
    std::vector<double> fresh;
    for (int r = 0; r < reps; ++r) {
      std::vector<int> order = ranks;
      std::rotate(order.begin(), order.begin() + r % k, order.end());
      fresh.push_back(time_ms(fabric, ranks, [&] {
        DeviceGroup group{order};
        group.validate(fabric);
        run(group);
      }));
    }
    // Steady state: one group, used again and again.
    const DeviceGroup steady{ranks};
    steady.validate(fabric);
    for (int r = 0; r < 3; ++r) run(steady);
    std::vector<double> used;
    for (int r = 0; r < reps; ++r) used.push_back(time_ms(fabric, ranks, [&] { run(steady); }));
    // Group set-up alone, on the host.
    std::vector<double> setup;
    for (int r = 0; r < 1000; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      DeviceGroup group{ranks};
      group.validate(fabric);
      setup.push_back(std::chrono::duration<double, std::micro>(
                          std::chrono::steady_clock::now() - t0).count());
    }
    // Reference: one raw peer copy of what member 0 sends member 1 (contiguous, no events).
    double raw_peer_ms = 0.0;
    if (k >= 2) {
      const std::size_t bytes = inputs[0].nbytes() / 2;
      const Tensor a = fabric.device(0).empty({static_cast<std::int64_t>(bytes)}, DType::u8);
      const Tensor b = fabric.device(1).empty({static_cast<std::int64_t>(bytes)}, DType::u8);
      auto& s0 = cuda::as_cuda(fabric.device(0));
      std::vector<double> raw;
      for (int r = 0; r < reps; ++r) {
        raw.push_back(time_ms(fabric, {0, 1}, [&] {
          cudaMemcpyPeerAsync(b.raw_data(), 1, a.raw_data(), 0, bytes, s0.stream());
        }));
      }
      raw_peer_ms = median(raw);
    }
    const double fresh_ms = median(fresh), used_ms = median(used), setup_us = median(setup);
    std::printf("%-6d %14.3f %14.3f %14.3f %12.3f %12.3f\n", k, first_ms, fresh_ms, used_ms,
                setup_us, raw_peer_ms);
    results.push_back({{"group_size", k},
                       {"shape", full},
                       {"dtype", "bf16"},
                       {"split_dim", 2},
                       {"concat_dim", 1},
                       {"first_all_to_all_ms", first_ms},
                       {"new_group_first_all_to_all_ms_median", fresh_ms},
                       {"steady_all_to_all_ms_median", used_ms},
                       {"group_setup_us_median", setup_us},
                       {"raw_peer_copy_half_shard_ms_median", raw_peer_ms},
                       {"reps", reps}});
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << nlohmann::json{{"benchmark", "comm_bench"},
                          {"gpus", gpus},
                          {"fabric_construct_us", fabric_us},
                          {"matches_cpu", correct},
                          {"peer_access", peer},
                          {"results", results}}
               .dump(2)
        << "\n";
  }
  return 0;
}
