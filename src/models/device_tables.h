#pragma once
// Device tensors a model derives from host values alone (a position table for a grid,
// RoPE angles, a per-sample constant), made once per key and reused by later steps. A few
// keys are kept, not one: two requests of different shapes stepping in turn would
// otherwise rebuild (upload) a table at every step, and a graph capture
// (kernels/captured_work.h) may not upload. Each tensor handed out during a capture is
// retained by the captured work, so dropping it here later never frees memory that a
// graph still reads.

#include <cstddef>
#include <utility>
#include <vector>

#include "kernels/captured_work.h"
#include "tensor/error.h"

namespace ditserve {

template <typename Key>
class DeviceTableCache {
 public:
  // REQUIRES: capacity >= 1.
  explicit DeviceTableCache(std::size_t capacity) : capacity_(capacity) {}

  // The table for `key`, made by make() (returning a Tensor on be's device) when absent;
  // the oldest entry goes when `capacity` are held.
  template <typename Make>
  Tensor get(const Backend& be, const Key& key, Make&& make) {
    Tensor table;
    for (const auto& [k, t] : entries_) {
      if (k == key) table = t;
    }
    if (!table.defined()) {
      table = make();
      if (entries_.size() >= capacity_) entries_.erase(entries_.begin());
      entries_.emplace_back(key, table);
    }
    retain_for_capture(be, table);
    return table;
  }
  std::size_t size() const { return entries_.size(); }

 private:
  std::size_t capacity_;
  std::vector<std::pair<Key, Tensor>> entries_;  // oldest first
};

}  // namespace ditserve
