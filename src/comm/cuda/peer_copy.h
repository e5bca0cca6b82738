#pragma once
// The CUDA paths of Fabric (compiled in CUDA builds only).

#include <vector>

#include "kernels/backend.h"

namespace ditserve::cuda {

// Enables peer access between every ordered pair of the given CUDA backends that supports
// it, including to the peer's default memory pool (where CachingAllocator allocates).
void enable_peer_access(const std::vector<Backend*>& devices);

// dst (on `to`, any strides) = src (on `from`); at least one of them is a CUDA backend
// (`from` and `to` may be the same GPU). Stream-ordered like transfer(): after work queued
// before on both sides, before work queued on `to` afterwards. Views whose innermost dims
// are contiguous on both sides (narrowed shards) move by pitched copy-engine copies with
// no staging; other layouts are packed on the source and re-laid out on the destination.
void fabric_copy(Backend& from, const Tensor& src, Backend& to, const Tensor& dst);

}  // namespace ditserve::cuda
