// Comparison with diffusers' AutoencoderKLWan: bench/reference/wan_vae_reference.py writes
// the directory DITSERVE_WAN_VAE_REFERENCE names (decoder checkpoints in diffusers' names,
// latents and the unclamped decode, configs in the metadata); without it the test is
// skipped. Runs on cuda:0 in f32 when there is one, else on the CPU.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "kernels/copy.h"
#include "models/wan_vae.h"
#include "support/random.h"

namespace ditserve {
namespace {

std::filesystem::path reference_dir() {
  const char* dir = std::getenv("DITSERVE_WAN_VAE_REFERENCE");
  return dir == nullptr ? std::filesystem::path() : std::filesystem::path(dir);
}

void compare_vae(const std::string& name) {
  const std::filesystem::path dir = reference_dir();
  const SafetensorsFile reference(dir / (name + "_ref.safetensors"));
  WanVAEConfig cfg = wan_vae_2_1();
  cfg.base_dim = std::stoll(reference.metadata().at("base_dim"));
  cfg.num_res_blocks = std::stoll(reference.metadata().at("num_res_blocks"));
  const auto checkpoint = open_weight_file(dir / reference.metadata().at("checkpoint"));
  const Device device = cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu();
  const auto be = make_backend(device);
  const auto host = make_backend(Device::cpu());
  WanVAE vae(cfg, *checkpoint, *be, DType::f32);
  ASSERT_EQ(vae.layout(), WanVaeLayout::diffusers);
  const Tensor z = reference.get("z");
  const std::int64_t frames = 4 * (z.size(2) - 1) + 1;
  const Tensor got = transfer(*be, vae.decode(transfer(*host, z, *be), frames), *host);
  const Tensor expected = reference.get("output");
  ASSERT_EQ(got.shape(), expected.shape());
  const double err = testing::relative_error(got, expected);
  std::printf("%s: Wan VAE vs diffusers on %s: relative error %.3e\n", name.c_str(),
              device.str().c_str(), err);
  EXPECT_LE(err, 2e-2) << name;
}

TEST(WanVaeReferenceTest, MatchesDiffusers) {
  if (reference_dir().empty()) GTEST_SKIP() << "DITSERVE_WAN_VAE_REFERENCE is not set";
  compare_vae("vae_tiny");
  compare_vae("vae_wide");
}

}  // namespace
}  // namespace ditserve
