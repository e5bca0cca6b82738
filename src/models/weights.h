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
// order of loading does not matter. f32 values; the same on every platform and for any
// number of threads, because the generator is fully specified:
//   - A normal tensor's n values (row-major) are cut into chunks of kRandomChunkValues;
//     chunk c holds values [c * kRandomChunkValues, min((c + 1) * kRandomChunkValues, n)).
//   - Chunk c draws from its own mt19937_64 seeded with the 64-bit FNV-1a hash (offset
//     basis 0xcbf29ce484222325, prime 0x100000001b3) of: the 8 bytes of `seed`, least
//     significant first; the bytes of `name`; the 8 bytes of c, least significant first.
//     (Chunk 0 of a tensor is its whole stream when n <= kRandomChunkValues.)
//   - Within a chunk, pair k (values 2k and 2k + 1 of the chunk) is Box-Muller on two
//     53-bit uniforms from consecutive draws a, b: u1 = ((a >> 11) + 1) * 2^-53,
//     u2 = (b >> 11) * 2^-53, r = sqrt(-2 ln u1) * std (in double); value 2k is
//     float(r cos(2 pi u2)), value 2k + 1 is float(r sin(2 pi u2)) (dropped past the end
//     of an odd-length last chunk). The chunk length is even, so no pair straddles chunks.
//   - zeros and ones are exact; rope_frequencies value i of n is float(10000^(-i / n)).
// Throws InvalidArgument naming the tensor when two specs share a name.
std::unique_ptr<WeightSource> random_weights(std::vector<ParamSpec> specs, std::uint64_t seed);

// The generator's chunk length (a power of two): the unit of parallel generation.
inline constexpr std::int64_t kRandomChunkValues = std::int64_t{1} << 16;
// Writes chunks [chunk_begin, chunk_end) of the values random_weights(..., seed) gives for
// `spec` to `values`, the start of the tensor's whole f32 buffer (numel(spec.shape)
// floats); other values are left alone. Chunks of one tensor may be filled concurrently
// from any threads. REQUIRES: 0 <= chunk_begin <= chunk_end <= the tensor's chunk count
// (ceil(numel / kRandomChunkValues)). Runs on the calling thread only.
void fill_random_chunks(const ParamSpec& spec, std::uint64_t seed, std::int64_t chunk_begin,
                        std::int64_t chunk_end, float* values);

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
