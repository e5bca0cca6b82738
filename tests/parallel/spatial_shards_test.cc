// SpatialShardContext's exchanges against the single-device kernels (f32, which is what
// the CPU kernels compute in): a 3x3 conv whose bands take halo rows from their
// neighbours, a GroupNorm with whole-image statistics and attention over gathered keys
// and values, on 1-4 CPU devices with uneven bands, and (when a GPU is present) on a
// group mixing cuda:0 and a CPU device.

#include "parallel/spatial_shards.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/collectives.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/copy.h"
#include "kernels/norm.h"
#include "models/opensora_vae.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

using testing::random_tensor;
using testing::relative_error;

struct Devices {
  std::vector<std::unique_ptr<Backend>> backends;
  std::unique_ptr<Fabric> fabric;
  explicit Devices(const std::vector<Device>& devices) {
    std::vector<Backend*> raw;
    for (const Device& d : devices) {
      backends.push_back(make_backend(d));
      raw.push_back(backends.back().get());
    }
    fabric = std::make_unique<Fabric>(raw);
  }
};

// Every exchange of the context over `group` equals the plain kernels on the host.
void check_exchanges(Devices& d, const DeviceGroup& group, DType dtype, double tolerance) {
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  Backend& owner = *d.backends[0];  // where the "model" keeps its parameters
  const auto in = [&](const Tensor& t) { return cast(*host, t, dtype); };
  const auto on_owner = [&](const Tensor& t) { return transfer(*host, in(t), owner); };
  const auto to_host = [&](const Tensor& t, int member) {
    const Tensor h =
        transfer(d.fabric->device(group.ranks[static_cast<std::size_t>(member)]), t, *host);
    return cast(*host, h, DType::f32);
  };
  // Values away from zero mean: the GroupNorm's variance must not cancel.
  const Tensor x = random_tensor({2, 7, 5, 8}, 1, 0.5f, 3.0f);  // [N, H, W, C]
  const Tensor w = random_tensor({6, 3, 3, 8}, 2);
  const Tensor b = random_tensor({6}, 3);
  const Tensor gw = random_tensor({8}, 4, 0.5f, 1.5f), gb = random_tensor({8}, 5);

  SpatialShardContext ctx(*d.fabric, group);
  const Bands bands = ctx.split(on_owner(x), 1);
  ASSERT_EQ(static_cast<int>(bands.size()), group.size());
  const Tensor w_owner = on_owner(w), b_owner = on_owner(b);

  const Bands conv = ctx.halo_conv(bands, 1, 1, [&](Backend& be, int m, const Tensor& t, int pad) {
    return conv2d(be, t, ctx.param(w_owner, m), ctx.param(b_owner, m), {1, 1}, {pad, 1});
  });
  const Tensor conv_want =
      cast(*host, conv2d(*host, in(x), in(w), in(b), {1, 1}, {1, 1}), DType::f32);
  EXPECT_LE(relative_error(to_host(ctx.gather(conv, 1), 0), conv_want), tolerance)
      << group.size() << " members, conv";

  const Bands norm = ctx.group_norm(bands, 4, on_owner(gw), on_owner(gb), 1e-6f);
  const Tensor norm_want =
      cast(*host, group_norm(*host, in(x), 4, in(gw), in(gb), 1e-6f), DType::f32);
  EXPECT_LE(relative_error(to_host(ctx.gather(norm, 1), 0), norm_want), tolerance)
      << group.size() << " members, group_norm";

  // Attention over the 35 positions of each image, 2 heads of 4.
  const Tensor flat = in(x).view({2, 35, 2, 4});
  const Bands seq = ctx.split(transfer(*host, flat, owner), 1);
  const Tensor k = random_tensor({2, 35, 2, 4}, 6);
  const Bands keys = ctx.split(on_owner(k), 1);
  const Bands att = ctx.attention(seq, keys, seq);
  const Tensor att_want = cast(*host, attention(*host, flat, in(k), flat), DType::f32);
  EXPECT_LE(relative_error(to_host(ctx.gather(att, 1), 0), att_want), tolerance)
      << group.size() << " members, attention";
  if (group.size() > 1) {
    EXPECT_GT(ctx.bytes_exchanged(), 0);
  }
}

TEST(SpatialShards, CpuGroupsOfOneToFourMatchTheKernels) {
  Devices d({Device::cpu(0), Device::cpu(1), Device::cpu(2), Device::cpu(3)});
  for (const DeviceGroup& g : {DeviceGroup{{0}}, DeviceGroup{{2}}, DeviceGroup{{1, 0}},
                               DeviceGroup{{0, 3, 2}}, DeviceGroup{{3, 2, 1, 0}}}) {
    check_exchanges(d, g, DType::f32, 1e-5);
  }
}

TEST(SpatialShards, OneDeviceContextCallsThePlainKernels) {
  const std::unique_ptr<Backend> be = make_backend(Device::cpu());
  SpatialShardContext ctx(*be);
  const Tensor x = random_tensor({1, 4, 3, 8}, 7);
  const Tensor w = random_tensor({8}, 8), b = random_tensor({8}, 9);
  const Bands out = ctx.group_norm(ctx.split(x, 1), 2, w, b, 1e-5f);
  EXPECT_EQ(out[0].to_vector_f32(), group_norm(*be, x, 2, w, b, 1e-5f).to_vector_f32());
  EXPECT_EQ(ctx.bytes_exchanged(), 0);
}

TEST(SpatialShards, RejectsBandsThatDoNotMatchTheGroup) {
  Devices d({Device::cpu(0), Device::cpu(1)});
  SpatialShardContext ctx(*d.fabric, DeviceGroup{{0, 1}});
  const Tensor x = transfer(*d.backends[0], random_tensor({1, 4, 3, 8}, 7), *d.backends[0]);
  EXPECT_THROW(ctx.group_norm({x}, 2, Tensor(), Tensor(), 1e-5f), InvalidArgument);
  EXPECT_THROW(ctx.group_norm({x, x}, 2, Tensor(), Tensor(), 1e-5f),
               InvalidArgument);                                   // band 1 on cpu:0
  EXPECT_THROW(ctx.split(x.narrow(1, 0, 1), 1), InvalidArgument);  // 1 row, 2 members
}

// A member given its own copy of the model's parameters gets that copy (the same tensor,
// no transfer); one given none gets a copy of the model's, made once; a tensor the model
// did not list is copied too; absent tensors pass through.
TEST(SpatialShards, MembersUseTheirOwnParameters) {
  Devices d({Device::cpu(0), Device::cpu(1), Device::cpu(2)});
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const auto on = [&](int rank, const Tensor& t) {
    return transfer(*host, t, *d.backends[static_cast<std::size_t>(rank)]);
  };
  const Tensor w_host = random_tensor({6, 3, 3, 8}, 2), b_host = random_tensor({6}, 3);
  const Tensor w = on(0, w_host), b = on(0, b_host);    // the model's, on rank 0
  const Tensor w1 = on(1, w_host), b1 = on(1, b_host);  // rank 1's own
  MemberParams own{{w, Tensor(), b}, {{w, Tensor(), b}, {w1, Tensor(), b1}, {}}};
  SpatialShardContext ctx(*d.fabric, DeviceGroup{{0, 1, 2}}, own);

  EXPECT_EQ(ctx.param(w, 0).raw_data(), w.raw_data());
  EXPECT_EQ(ctx.param(w, 1).raw_data(), w1.raw_data());
  EXPECT_EQ(ctx.param(b, 1).raw_data(), b1.raw_data());
  EXPECT_FALSE(ctx.param(Tensor(), 1).defined());
  EXPECT_EQ(ctx.param_bytes_copied(), 0);

  const Tensor w2 = ctx.param(w, 2);  // rank 2 has no copy of its own
  EXPECT_EQ(w2.device(), Device::cpu(2));
  EXPECT_EQ(w2.to_vector_f32(), w_host.to_vector_f32());
  EXPECT_EQ(ctx.param_bytes_copied(), static_cast<std::int64_t>(w.nbytes()));
  EXPECT_EQ(ctx.param(w, 2).raw_data(), w2.raw_data());  // made once
  EXPECT_EQ(ctx.param_bytes_copied(), static_cast<std::int64_t>(w.nbytes()));

  const Tensor unlisted = on(0, random_tensor({4}, 9));
  EXPECT_EQ(ctx.param(unlisted, 1).device(), Device::cpu(1));
  EXPECT_EQ(ctx.param_bytes_copied(), static_cast<std::int64_t>(w.nbytes() + unlisted.nbytes()));

  // A conv whose member 1 runs with its own weights matches the kernels on the host.
  const Tensor x = random_tensor({1, 7, 5, 8}, 1);
  const Bands bands = ctx.split(on(0, x), 1);
  const Bands conv = ctx.halo_conv(bands, 1, 1, [&](Backend& be, int m, const Tensor& t, int pad) {
    return conv2d(be, t, ctx.param(w, m), ctx.param(b, m), {1, 1}, {pad, 1});
  });
  EXPECT_LE(relative_error(ctx.gather(conv, 1).to_vector_f32(),
                           conv2d(*host, x, w_host, b_host, {1, 1}, {1, 1}).to_vector_f32()),
            1e-5);
}

TEST(SpatialShards, RejectsMemberParamsThatDoNotMatchTheModel) {
  Devices d({Device::cpu(0), Device::cpu(1)});
  const DeviceGroup group{{0, 1}};
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const auto on = [&](int rank, const Tensor& t) {
    return transfer(*host, t, *d.backends[static_cast<std::size_t>(rank)]);
  };
  const Tensor w = on(0, random_tensor({4, 3}, 1)), b = on(0, random_tensor({4}, 2));
  const auto rejected = [&](MemberParams own, const char* why) {
    try {
      SpatialShardContext ctx(*d.fabric, group, std::move(own));
      ADD_FAILURE() << why << " was accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("params"), std::string::npos) << e.what();
    }
  };
  rejected({{w, b}, {{w, b}}}, "one listing for two members");
  rejected({{w, b}, {{}, {on(1, w)}}}, "a listing one parameter short");
  rejected({{w, b}, {{}, {on(1, b), on(1, w)}}}, "parameters in another order");
  rejected({{w, b}, {{}, {w, on(1, b)}}}, "a member's parameter on another device");
  rejected({{w, b}, {{}, {on(1, w), Tensor()}}}, "an absent parameter the model has");
  SpatialShardContext fine(*d.fabric, group, MemberParams{{w, b}, {{}, {on(1, w), on(1, b)}}});
  EXPECT_EQ(fine.param_bytes_copied(), 0);
}

// A group of a GPU and a CPU device: halo rows, sums and keys cross between them
// (cuDNN and the CPU kernels round differently, hence the looser VAE tolerance).
TEST(SpatialShards, MixedCudaAndCpuGroupMatchesTheKernels) {
  if (cuda_device_count() < 1) GTEST_SKIP() << "no CUDA device";
  Devices d({Device::cuda(0), Device::cpu(1)});
  check_exchanges(d, DeviceGroup{{0, 1}}, DType::f32, 1e-5);
  check_exchanges(d, DeviceGroup{{1, 0}}, DType::f32, 1e-5);
  // all_reduce across the two: bf16 summed on member 0 (256 + 2 is exact in bf16).
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const Tensor v = cast(*host, Tensor::from_vector({256.0f, 0.5f}, {2}), DType::bf16);
  const Tensor one = cast(*host, Tensor::from_vector({2.0f, 0.5f}, {2}), DType::bf16);
  const std::vector<Tensor> out =
      all_reduce(*d.fabric, DeviceGroup{{0, 1}},
                 {transfer(*host, v, *d.backends[0]), transfer(*host, one, *d.backends[1])});
  EXPECT_EQ(transfer(*d.backends[0], out[0], *host).to_vector_f32(),
            (std::vector<float>{258.0f, 1.0f}));
  EXPECT_EQ(out[1].to_vector_f32(), (std::vector<float>{258.0f, 1.0f}));

  // The tiny Open-Sora VAE (f32, parameters on cuda:0) decoded in two bands, one on the
  // GPU and one on the CPU, against its plain decode on the GPU.
  const OpenSoraVAEConfig cfg = opensora_vae_tiny();
  const std::unique_ptr<WeightSource> weights =
      random_weights(opensora_vae_decoder_parameters(cfg), 5);
  OpenSoraVAE vae(cfg, *weights, *d.backends[0], DType::f32);
  const Tensor z = transfer(*host, random_tensor({1, 4, 2, 5, 4}, 11, -2.0f, 2.0f), *d.backends[0]);
  const Tensor want = transfer(*d.backends[0], vae.decode(z, 5), *host);
  for (const DeviceGroup& g : {DeviceGroup{{0}}, DeviceGroup{{0, 1}}, DeviceGroup{{1, 0}}}) {
    SpatialShardContext ctx(*d.fabric, g);
    const Tensor got = vae.decode_patch_parallel(ctx, z, 5);
    const double err = relative_error(transfer(d.fabric->device(g.ranks[0]), got, *host), want);
    std::printf("patch-parallel VAE decode on %zu member(s) (first rank %d): rel. error %.3g\n",
                g.ranks.size(), g.ranks[0], err);
    EXPECT_LE(err, 1e-3) << g.size() << " members";
  }
}

}  // namespace
}  // namespace ditserve
