#pragma once
// Timing of interchangeable kernels (GEMM algorithms, cuDNN engine configurations) on a
// problem's first use, so the fastest can be cached for every later call.

#include <cstddef>
#include <functional>
#include <optional>
#include <vector>

namespace ditserve::cuda {

class CudaBackend;

// Median milliseconds of `timed_runs` launches of each of `count` candidates on be's
// stream, after one warm-up launch each; nullopt for a candidate whose launch fails
// (`launch(i)` returns false). The timed launches go in rounds that launch every
// candidate once, so that the GPU's clocks settling during the measurement do not favour
// the candidates timed last. Waits for the stream once.
std::vector<std::optional<double>> time_candidates_interleaved(
    CudaBackend& be, std::size_t count, int timed_runs,
    const std::function<bool(std::size_t)>& launch);

}  // namespace ditserve::cuda
