#include "models/prefetched_weights.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "io/safetensors.h"
#include "tensor/dtype.h"
#include "tensor/error.h"

namespace ditserve {

PrefetchedRandomWeights::PrefetchedRandomWeights(std::vector<ParamSpec> specs, std::uint64_t seed,
                                                 unsigned threads)
    : generator_(random_weights(specs, seed)), specs_(std::move(specs)), tensors_(specs_.size()) {
  if (threads == 0) threads = std::clamp(std::thread::hardware_concurrency(), 1u, 32u);
  threads = std::min<unsigned>(threads, static_cast<unsigned>(std::max<std::size_t>(specs_.size(), 1)));
  // Largest first, so one big embedding does not start last and leave the others idle.
  std::vector<std::size_t> order(specs_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return shape_numel(specs_[a].shape) > shape_numel(specs_[b].shape);
  });
  std::atomic<std::size_t> next{0};
  std::mutex error_mutex;
  std::string error;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (std::size_t k = next++; k < order.size(); k = next++) {
        const ParamSpec& spec = specs_[order[k]];
        try {
          tensors_[order[k]] = generator_->get(spec.name, spec.shape);
        } catch (const std::exception& e) {
          const std::lock_guard<std::mutex> lock(error_mutex);
          if (error.empty()) error = e.what();
        }
      }
    });
  }
  for (std::thread& t : pool) t.join();
  if (!error.empty()) throw Error(error);
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
