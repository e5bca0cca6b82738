#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "kernels/copy.h"
#include "models/t5_encoder.h"
#include "models/wan_transformer.h"
#include "support/random.h"

// Comparison with diffusers' WanTransformer3DModel and transformers' UMT5EncoderModel.
// bench/reference/wan_reference.py writes the directory DITSERVE_WAN_REFERENCE names
// (checkpoints in the modules' own tensor names, inputs and outputs, configs in the
// metadata); without it the tests are skipped. They run on cuda:0 in f32 when there is
// one, else on the CPU.

namespace ditserve {
namespace {

std::filesystem::path reference_dir() {
  const char* dir = std::getenv("DITSERVE_WAN_REFERENCE");
  return dir == nullptr ? std::filesystem::path() : std::filesystem::path(dir);
}

std::int64_t field(const SafetensorsFile& file, const char* name) {
  return std::stoll(file.metadata().at(name));
}

Device compute_device() { return cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu(); }

void compare_wan(const std::string& name) {
  const std::filesystem::path dir = reference_dir();
  const SafetensorsFile reference(dir / (name + "_ref.safetensors"));
  WanConfig config = wan_tiny();
  config.dim = field(reference, "dim");
  config.num_heads = field(reference, "heads");
  config.ffn_dim = field(reference, "ffn_dim");
  config.num_layers = field(reference, "layers");
  config.text_dim = field(reference, "text_dim");
  config.text_len = field(reference, "text_len");
  const auto checkpoint = open_weight_file(dir / reference.metadata().at("checkpoint"));
  const auto be = make_backend(compute_device());
  const auto host = make_backend(Device::cpu());
  WanTransformer model(config, WeightLoader(*checkpoint, *be, DType::f32));
  ASSERT_EQ(model.layout(), WanLayout::diffusers);
  DenoiseInputs in;
  in.latents = transfer(*host, reference.get("latents"), *be);
  in.timesteps = transfer(*host, reference.get("timesteps"), *be);
  in.captions = transfer(*host, reference.get("captions"), *be);
  in.caption_lengths = transfer(*host, reference.get("lengths"), *be);
  const Tensor got = transfer(*be, model.forward(in), *host);
  const double err = testing::relative_error(got, reference.get("output"));
  std::printf("%s: Wan DiT vs diffusers on %s: relative error %.3e\n", name.c_str(),
              be->device().str().c_str(), err);
  EXPECT_LE(err, 2e-2) << name;
}

TEST(WanReferenceTest, MatchesDiffusers) {
  if (reference_dir().empty()) GTEST_SKIP() << "DITSERVE_WAN_REFERENCE is not set";
  compare_wan("wan_tiny");
  compare_wan("wan_wide");
}

TEST(WanReferenceTest, Umt5MatchesTransformers) {
  if (reference_dir().empty()) GTEST_SKIP() << "DITSERVE_WAN_REFERENCE is not set";
  const std::filesystem::path dir = reference_dir();
  const SafetensorsFile reference(dir / "umt5_tiny_ref.safetensors");
  T5Config config = umt5_tiny();
  config.vocab = field(reference, "vocab");
  config.d_model = field(reference, "d_model");
  config.d_ff = field(reference, "d_ff");
  config.d_kv = field(reference, "d_kv");
  config.heads = field(reference, "heads");
  config.layers = field(reference, "layers");
  config.buckets = field(reference, "buckets");
  config.max_distance = field(reference, "max_distance");
  config.eps = std::stof(reference.metadata().at("eps"));
  const Tensor ids = reference.get("ids");
  config.max_tokens = ids.size(1);
  const auto checkpoint = open_weight_file(dir / reference.metadata().at("checkpoint"));
  const auto be = make_backend(compute_device());
  const auto host = make_backend(Device::cpu());
  T5Encoder encoder(config, WeightLoader(*checkpoint, *be, DType::f32));
  const Tensor out =
      encoder.encode(transfer(*host, ids, *be), transfer(*host, reference.get("lengths"), *be));
  const double err = testing::relative_error(transfer(*be, out, *host), reference.get("hidden"));
  std::printf("UMT5 vs transformers on %s: relative error %.3e\n", be->device().str().c_str(), err);
  EXPECT_LE(err, 2e-2);
}

}  // namespace
}  // namespace ditserve
