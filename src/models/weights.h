#pragma once
// How a model gets its parameters. A model lists its parameters as ParamSpecs (public
// checkpoint name, PyTorch shape, and how to initialise it randomly); a WeightSource
// supplies host tensors by name (a checkpoint on disk, or seeded random values for the
// built-in `tiny` models and for `ditserve make-weights`); a WeightLoader checks shapes,
// converts dtype and layout, and places each tensor on the backend's device.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace ditserve {

enum class ParamInit {
  normal,  // N(0, std): linear and conv weights, embeddings
  zeros,   // biases
  ones,    // norm weights
  rope_frequencies,  // 10000^(-i/n), i < n: a stored RoPE frequency table (STDiT3's rope.freqs)
};

struct ParamSpec {
  std::string name;  // exactly the public checkpoint name
  Shape shape;       // PyTorch layout ([out, in] for Linear, [O, C, k...] for Conv)
  ParamInit init = ParamInit::normal;
  float std = 0.02f;
};

// Host tensors by name. Implementations are immutable and thread-safe.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool contains(const std::string& name) const = 0;
  // Host tensor (any float dtype) with exactly `expected` shape; throws InvalidArgument
  // naming the tensor and the source (file) when missing or mis-shaped.
  virtual Tensor get(const std::string& name, const Shape& expected) const = 0;
  virtual std::string describe() const = 0;  // e.g. the checkpoint path
};

// A safetensors file, a sharded index json, or a directory holding either.
std::unique_ptr<WeightSource> open_weight_file(const std::filesystem::path& path);
// Seeded random values for `specs`: tensor `name` depends only on (seed, name), so the
// order of loading does not matter. f32 values; the same on every platform (the generator
// is fully specified: FNV-1a seeding, mt19937_64, Box-Muller). Throws InvalidArgument
// naming the tensor when two specs share a name.
std::unique_ptr<WeightSource> random_weights(std::vector<ParamSpec> specs, std::uint64_t seed);

// Writes random weights for `specs` as a (sharded when large) safetensors checkpoint in
// `dir`, storing `dtype` (f32 or bf16), with the same values random_weights() gives
// (rounded to nearest even for bf16). Shards of about 2 GB are generated and written one
// at a time, so memory stays near one shard; an index json is always written.
void write_random_checkpoint(const std::filesystem::path& dir, const std::vector<ParamSpec>& specs,
                             std::uint64_t seed, DType dtype);

// Loads parameters for one model onto one backend in its compute dtype.
class WeightLoader {
 public:
  // `prefix` is prepended to every name (e.g. "spatial_vae.module.").
  WeightLoader(const WeightSource& source, Backend& be, DType dtype, std::string prefix = "");

  // Whether the source holds `name` (after the prefix): for models that accept either of
  // two public names for one tensor.
  bool contains(const std::string& name) const;
  // The tensor in the compute dtype on be's device, PyTorch layout.
  Tensor load(const std::string& name, const Shape& shape) const;
  // Kept in f32 whatever the compute dtype (e.g. RoPE frequencies, scale tables).
  Tensor load_f32(const std::string& name, const Shape& shape) const;
  // A convolution weight stored [O, C, k...] returned channels-last [O, k..., C], the
  // layout kernels/conv.h takes.
  Tensor load_conv(const std::string& name, const Shape& shape) const;
  // A loader whose names get `more` appended to this prefix.
  WeightLoader sub(const std::string& more) const;

  Backend& backend() const { return be_; }
  DType dtype() const { return dtype_; }

 private:
  const WeightSource& source_;
  Backend& be_;
  DType dtype_;
  std::string prefix_;
};

}  // namespace ditserve
