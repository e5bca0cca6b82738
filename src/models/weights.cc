#include "models/weights.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numbers>
#include <random>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "kernels/copy.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

namespace fs = std::filesystem;

static_assert(kRandomChunkValues % 2 == 0, "a Box-Muller pair must not straddle two chunks");
constexpr std::uint64_t kShardBytes = 2ull << 30;

std::uint64_t fnv1a(std::uint64_t hash, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

// Hashes integers byte by byte, least significant first, so the value is the same on
// hosts of either endianness.
std::uint64_t fnv1a_u64(std::uint64_t hash, std::uint64_t value) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(value >> (8 * i));
  return fnv1a(hash, bytes, sizeof(bytes));
}

std::uint64_t chunk_seed(std::uint64_t seed, const std::string& name, std::uint64_t chunk) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  hash = fnv1a_u64(hash, seed);
  hash = fnv1a(hash, name.data(), name.size());
  return fnv1a_u64(hash, chunk);
}

// Standard normals by Box-Muller on 53-bit uniforms; std::normal_distribution is not
// specified exactly, so it would differ between standard libraries.
void fill_normal(float* out, std::int64_t n, std::uint64_t seed, double std) {
  std::mt19937_64 gen(seed);
  constexpr double kUnit = 1.0 / 9007199254740992.0;  // 2^-53
  for (std::int64_t i = 0; i < n; i += 2) {
    const double u1 = static_cast<double>((gen() >> 11) + 1) * kUnit;  // (0, 1]
    const double u2 = static_cast<double>(gen() >> 11) * kUnit;        // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1)) * std;
    const double angle = 2.0 * std::numbers::pi * u2;
    out[i] = static_cast<float>(r * std::cos(angle));
    if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(angle));
  }
}

std::int64_t chunk_count(std::int64_t numel) {
  return (numel + kRandomChunkValues - 1) / kRandomChunkValues;
}

Tensor generate(const ParamSpec& spec, std::uint64_t seed) {
  Tensor out = Tensor::empty_host(spec.shape, DType::f32);
  const std::int64_t chunks = chunk_count(out.numel());
  float* data = out.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) fill_random_chunks(spec, seed, c, c + 1, data);
  return out;
}

std::string source_name(std::uint64_t seed) {
  return "random weights (seed " + std::to_string(seed) + ")";
}

std::unordered_map<std::string, std::size_t> index_specs(const std::vector<ParamSpec>& specs,
                                                         std::uint64_t seed) {
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    DITSERVE_CHECK(!specs[i].name.empty(), source_name(seed), ": parameter ", i,
                   " has an empty name");
    DITSERVE_CHECK(index.emplace(specs[i].name, i).second, source_name(seed), ": tensor '",
                   specs[i].name, "' is listed twice");
  }
  return index;
}

class RandomWeights final : public WeightSource {
 public:
  RandomWeights(std::vector<ParamSpec> specs, std::uint64_t seed)
      : specs_(std::move(specs)), seed_(seed), index_(index_specs(specs_, seed)) {}

  bool contains(const std::string& name) const override { return index_.contains(name); }

  Tensor get(const std::string& name, const Shape& expected) const override {
    const auto it = index_.find(name);
    DITSERVE_CHECK(it != index_.end(), "tensor '", name, "' not found in ", describe());
    const ParamSpec& spec = specs_[it->second];
    DITSERVE_CHECK(spec.shape == expected, "tensor '", name, "' in ", describe(), " has shape ",
                   shape_str(spec.shape), ", expected ", shape_str(expected));
    return generate(spec, seed_);
  }

  std::string describe() const override { return source_name(seed_); }

 private:
  std::vector<ParamSpec> specs_;
  std::uint64_t seed_;
  std::unordered_map<std::string, std::size_t> index_;
};

class CheckpointWeights final : public WeightSource {
 public:
  explicit CheckpointWeights(const fs::path& path) : checkpoint_(path) {}

  bool contains(const std::string& name) const override { return checkpoint_.contains(name); }

  Tensor get(const std::string& name, const Shape& expected) const override {
    Tensor t = checkpoint_.get(name, expected);
    DITSERVE_CHECK(is_floating(t.dtype()), "tensor '", name, "' in ", describe(), " is ",
                   dtype_name(t.dtype()), ", expected a floating-point dtype");
    return t;
  }

  std::string describe() const override { return checkpoint_.path().string(); }

 private:
  Checkpoint checkpoint_;
};

std::string shard_file_name(std::size_t k, std::size_t n) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", k, n);
  return name;
}

// Removes the shards written so far unless dismissed: a failed write leaves no partial
// checkpoint behind.
class ShardCleanup {
 public:
  ~ShardCleanup() {
    if (dismissed_) return;
    std::error_code error;
    for (const fs::path& p : written_) fs::remove(p, error);
  }
  void add(fs::path path) { written_.push_back(std::move(path)); }
  void dismiss() { dismissed_ = true; }

 private:
  std::vector<fs::path> written_;
  bool dismissed_ = false;
};

// On the host: `t` as a contiguous tensor of `dtype` (t itself when it already is one).
Tensor to_host_dtype(const Tensor& t, DType dtype) {
  const std::unique_ptr<Backend> host = make_backend(Device::cpu(0));
  return t.dtype() == dtype ? contiguous(*host, t) : cast(*host, t, dtype);
}

}  // namespace

void fill_random_chunks(const ParamSpec& spec, std::uint64_t seed, std::int64_t chunk_begin,
                        std::int64_t chunk_end, float* values) {
  const std::int64_t n = shape_numel(spec.shape);
  const std::int64_t begin = std::min(chunk_begin * kRandomChunkValues, n);
  const std::int64_t end = std::min(chunk_end * kRandomChunkValues, n);
  switch (spec.init) {
    case ParamInit::zeros:
      std::fill(values + begin, values + end, 0.0f);
      break;
    case ParamInit::ones:
      std::fill(values + begin, values + end, 1.0f);
      break;
    case ParamInit::rope_frequencies:
      // The frequencies of a RoPE over 2n dims: theta^(-2i / 2n), i < n, theta = 10000.
      for (std::int64_t i = begin; i < end; ++i) {
        values[i] = static_cast<float>(std::pow(10000.0, -static_cast<double>(i) / static_cast<double>(n)));
      }
      break;
    case ParamInit::normal:
      for (std::int64_t c = chunk_begin; c < chunk_end; ++c) {
        const std::int64_t first = c * kRandomChunkValues;
        if (first >= n) break;
        fill_normal(values + first, std::min(kRandomChunkValues, n - first),
                    chunk_seed(seed, spec.name, static_cast<std::uint64_t>(c)), spec.std);
      }
      break;
  }
}

std::unique_ptr<WeightSource> open_weight_file(const fs::path& path) {
  return std::make_unique<CheckpointWeights>(path);
}

std::unique_ptr<WeightSource> random_weights(std::vector<ParamSpec> specs, std::uint64_t seed) {
  return std::make_unique<RandomWeights>(std::move(specs), seed);
}

void write_random_checkpoint(const fs::path& dir, const std::vector<ParamSpec>& specs,
                             std::uint64_t seed, DType dtype) {
  DITSERVE_CHECK(dtype == DType::f32 || dtype == DType::bf16, "write_random_checkpoint: dtype ",
                 dtype_name(dtype), " is not supported (f32 or bf16)");
  index_specs(specs, seed);  // rejects duplicate names before anything is written

  // Shards in spec order; a tensor larger than a shard gets one of its own.
  std::vector<std::vector<const ParamSpec*>> shards;
  std::uint64_t shard_bytes = 0, total_bytes = 0;
  for (const ParamSpec& spec : specs) {
    const std::uint64_t bytes =
        static_cast<std::uint64_t>(shape_numel(spec.shape)) * dtype_size(dtype);
    if (shards.empty() || (shard_bytes > 0 && shard_bytes + bytes > kShardBytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&spec);
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  if (shards.empty()) shards.emplace_back();

  std::error_code error;
  fs::create_directories(dir, error);
  if (error) throw Error("cannot create directory " + dir.string() + ": " + error.message());

  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"ditserve_random_seed", std::to_string(seed)}};
  nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}},
                          {"weight_map", nlohmann::json::object()}};
  ShardCleanup cleanup;
  for (std::size_t k = 0; k < shards.size(); ++k) {
    const std::string name = shard_file_name(k + 1, shards.size());
    NamedTensors tensors;
    for (const ParamSpec* spec : shards[k]) {
      tensors.emplace_back(spec->name, to_host_dtype(generate(*spec, seed), dtype));
      index["weight_map"][spec->name] = name;
    }
    cleanup.add(dir / name);
    write_safetensors(dir / name, tensors, metadata);
  }
  const std::string text = index.dump(2) + "\n";
  AtomicFile file(dir / "model.safetensors.index.json");
  file.write(text.data(), text.size());
  file.commit();
  cleanup.dismiss();
}

WeightLoader::WeightLoader(const WeightSource& source, Backend& be, DType dtype, std::string prefix)
    : source_(source), be_(be), dtype_(dtype), prefix_(std::move(prefix)) {
  DITSERVE_CHECK(is_floating(dtype), "WeightLoader: compute dtype ", dtype_name(dtype),
                 " is not a floating-point dtype");
}

bool WeightLoader::contains(const std::string& name) const {
  return source_.contains(prefix_ + name);
}

Tensor WeightLoader::load(const std::string& name, const Shape& shape) const {
  const Tensor host = to_host_dtype(source_.get(prefix_ + name, shape), dtype_);
  const std::unique_ptr<Backend> from = make_backend(host.device());
  return transfer(*from, host, be_);
}

Tensor WeightLoader::load_f32(const std::string& name, const Shape& shape) const {
  const Tensor host = to_host_dtype(source_.get(prefix_ + name, shape), DType::f32);
  const std::unique_ptr<Backend> from = make_backend(host.device());
  return transfer(*from, host, be_);
}

Tensor WeightLoader::load_conv(const std::string& name, const Shape& shape) const {
  DITSERVE_CHECK(shape.size() >= 3, "load_conv: tensor '", prefix_ + name, "' shape ",
                 shape_str(shape), " is not a convolution weight [O, C, k...]");
  const Tensor stored = source_.get(prefix_ + name, shape);
  std::vector<std::int64_t> order = {0};
  for (std::size_t d = 2; d < shape.size(); ++d) order.push_back(static_cast<std::int64_t>(d));
  order.push_back(1);
  const Tensor host = to_host_dtype(stored.permute(order), dtype_);
  const std::unique_ptr<Backend> from = make_backend(host.device());
  return transfer(*from, host, be_);
}

WeightLoader WeightLoader::sub(const std::string& more) const {
  return WeightLoader(source_, be_, dtype_, prefix_ + more);
}

}  // namespace ditserve
