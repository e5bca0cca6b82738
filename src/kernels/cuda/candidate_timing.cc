#include "kernels/cuda/candidate_timing.h"

#include <memory>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/gemm_plan.h"
#include "tensor/cuda/stream.h"

namespace ditserve::cuda {

std::vector<std::optional<double>> time_candidates_interleaved(
    CudaBackend& be, std::size_t count, int timed_runs,
    const std::function<bool(std::size_t)>& launch) {
  std::vector<std::size_t> runnable;  // warmed up
  for (std::size_t i = 0; i < count; ++i) {
    if (launch(i)) runnable.push_back(i);
  }
  std::vector<std::optional<double>> times(count);
  if (runnable.empty() || timed_runs < 1) return times;
  // Mark j is recorded just before launch j (of all rounds in order), one more after the last.
  const std::size_t launches = runnable.size() * static_cast<std::size_t>(timed_runs);
  std::vector<std::unique_ptr<Event>> marks;
  for (std::size_t j = 0; j <= launches; ++j) {
    marks.push_back(std::make_unique<Event>(be.device_index(), /*timing=*/true));
  }
  std::vector<bool> failed(count, false);
  for (std::size_t j = 0; j < launches; ++j) {
    const std::size_t i = runnable[j % runnable.size()];
    marks[j]->record(be.stream());
    if (!launch(i)) failed[i] = true;
  }
  marks[launches]->record(be.stream());
  marks[launches]->synchronize();
  std::vector<std::vector<double>> samples(count);
  for (std::size_t j = 0; j < launches; ++j) {
    samples[runnable[j % runnable.size()]].push_back(marks[j + 1]->elapsed_ms_since(*marks[j]));
  }
  for (const std::size_t i : runnable) {
    if (!failed[i]) times[i] = median_ms(std::move(samples[i]));
  }
  return times;
}

}  // namespace ditserve::cuda
