#include "models/prefetched_weights.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "io/safetensors.h"
#include "tensor/dtype.h"
#include "tensor/error.h"

namespace ditserve {

namespace {

// Chunks per work item: about 1M values (a few milliseconds), small enough that every thread
// shares the largest tensor and finishes within an item of the others, large enough that
// taking items costs nothing.
constexpr std::int64_t kChunksPerItem = 16;

struct WorkItem {
  const ParamSpec* spec;
  float* values;  // the whole tensor's
  std::int64_t chunk_begin, chunk_end;
};

}  // namespace

PrefetchedRandomWeights::PrefetchedRandomWeights(std::vector<ParamSpec> specs, std::uint64_t seed,
                                                 unsigned threads)
    : generator_(random_weights(specs, seed)), specs_(std::move(specs)), tensors_(specs_.size()) {
  // Each tensor is cut into items of whole chunks; the values do not depend on which thread
  // fills which item (fill_random_chunks), so any split gives random_weights()' tensors.
  std::vector<WorkItem> items;
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    tensors_[i] = Tensor::empty_host(specs_[i].shape, DType::f32);
    float* values = tensors_[i].data<float>();
    const std::int64_t chunks = (tensors_[i].numel() + kRandomChunkValues - 1) / kRandomChunkValues;
    for (std::int64_t c = 0; c < chunks; c += kChunksPerItem) {
      items.push_back({&specs_[i], values, c, std::min(c + kChunksPerItem, chunks)});
    }
  }
  if (threads == 0) threads = std::clamp(std::thread::hardware_concurrency(), 1u, 32u);
  threads = std::min<unsigned>(threads, static_cast<unsigned>(std::max<std::size_t>(items.size(), 1)));
  std::atomic<std::size_t> next{0};
  const auto work = [&] {
    for (std::size_t k = next++; k < items.size(); k = next++) {
      const WorkItem& item = items[k];
      fill_random_chunks(*item.spec, seed, item.chunk_begin, item.chunk_end, item.values);
    }
  };
  std::vector<std::jthread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  pool.clear();  // joins
  for (std::size_t i = 0; i < specs_.size(); ++i) index_[specs_[i].name] = i;
}

bool PrefetchedRandomWeights::contains(const std::string& name) const {
  return generator_->contains(name);
}

Tensor PrefetchedRandomWeights::get(const std::string& name, const Shape& expected) const {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto it = index_.find(name);
    if (it != index_.end() && tensors_[it->second].defined() &&
        tensors_[it->second].shape() == expected) {
      Tensor t = std::move(tensors_[it->second]);
      tensors_[it->second] = Tensor();
      return t;
    }
  }
  return generator_->get(name, expected);
}

std::string PrefetchedRandomWeights::describe() const {
  return "prefetched " + generator_->describe();
}

void PrefetchedRandomWeights::export_bf16(const std::filesystem::path& dir) const {
  NamedTensors named;
  const std::lock_guard<std::mutex> lock(mutex_);
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    const Tensor& f = tensors_[i];
    DITSERVE_CHECK(f.defined(), "export-weights: ", specs_[i].name, " was already loaded");
    const std::vector<float> values = f.to_vector_f32();
    Tensor b = Tensor::empty_host(f.shape(), DType::bf16);
    auto* out = b.data<std::uint16_t>();
    for (std::size_t j = 0; j < values.size(); ++j) out[j] = f32_to_bf16(values[j]);
    named.emplace_back(specs_[i].name, std::move(b));
  }
  write_sharded_checkpoint(dir, named, std::uint64_t{2} << 30,
                           {{"format", "pt"}, {"source", "ditserve random weights"}});
}

}  // namespace ditserve
