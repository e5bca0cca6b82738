// Data movement: casts, contiguous copies, broadcast copies, concatenation, transfers,
// nearest upsampling and padding. All of them must reproduce the CPU result exactly.

#include "harness.h"
#include "kernels/copy.h"
#include "kernels/resample.h"

namespace ditserve::gpu_check {
namespace {

constexpr bool kExact = true;
const std::vector<DType> kBoth{DType::f32, DType::bf16};
const std::vector<DType> kF32{DType::f32};

void add_casts(std::vector<Case>& cases) {
  for (const DType to : {DType::bf16, DType::f16}) {
    cases.push_back({"cast", "f32[300,77] -> " + std::string(dtype_name(to)),
                     {floating({300, 77}, 3.0f)},
                     [to](Backend& be, const std::vector<Tensor>& in) {
                       return cast(be, in[0], to);
                     },
                     kF32, kExact});
  }
  // In the bf16 run the GPU casts bf16 -> f32 (the CPU holds the same values in f32).
  cases.push_back({"cast", "x[300,77] -> f32", {floating({300, 77}, 3.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return cast(be, in[0], DType::f32);
                   },
                   kBoth, kExact});
  cases.push_back({"cast", "f32[1000] (|x| < 1000) -> i32 (truncation)",
                   {floating({1000}, 1000.0f)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return cast(be, in[0], DType::i32);
                   },
                   kF32, kExact});
  cases.push_back({"cast", "i64[4,50] -> i32 -> f32", {ids({4, 50}, 1 << 20, DType::i64)},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return cast(be, cast(be, in[0], DType::i32), DType::f32);
                   },
                   kF32, kExact});
  cases.push_back({"cast", "x = [40,30]^T (non-contiguous) -> f16", {floating({40, 30})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return cast(be, in[0].transpose(0, 1), DType::f16);
                   },
                   kBoth, kExact});
}

void add_copies(std::vector<Case>& cases) {
  cases.push_back({"contiguous", "x[3,40,50,8] permuted (0,2,3,1)", {floating({3, 40, 50, 8})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return contiguous(be, in[0].permute({0, 2, 3, 1}));
                   },
                   kBoth, kExact});
  cases.push_back({"contiguous", "x[9,10,11] narrowed to [9,4,7] at (3,2)", {floating({9, 10, 11})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return contiguous(be, in[0].narrow(1, 3, 4).narrow(2, 2, 7));
                   },
                   kBoth, kExact});
  cases.push_back({"copy_into", "src[1,64] broadcast into a [50,64] slice of [50,100]",
                   {floating({50, 100}), floating({1, 64})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     const Tensor dst = contiguous(be, in[0].transpose(0, 1)).transpose(0, 1);
                     copy_into(be, dst.narrow(1, 20, 64), in[1]);
                     return contiguous(be, dst);
                   },
                   kBoth, kExact});
  for (const std::int64_t dim : {0, 1, 2}) {
    Shape a{4, 6, 8}, b{4, 6, 8};
    a[dim] = 3;
    b[dim] = 5;
    cases.push_back({"concat", "3 parts along dim " + std::to_string(dim),
                     {floating(a), floating(b), floating({4, 6, 8})},
                     [dim](Backend& be, const std::vector<Tensor>& in) {
                       return concat(be, in, dim);
                     },
                     kBoth, kExact});
  }
}

void add_resampling(std::vector<Case>& cases) {
  cases.push_back({"upsample_nearest", "x[2,9,11,32] x(2,2)", {floating({2, 9, 11, 32})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return upsample_nearest(be, in[0], {2, 2});
                   },
                   kBoth, kExact});
  cases.push_back({"upsample_nearest", "x[1,3,5,7,16] x(1,2,2)", {floating({1, 3, 5, 7, 16})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return upsample_nearest(be, in[0], {1, 2, 2});
                   },
                   kBoth, kExact});
  cases.push_back({"upsample_nearest", "x[2,3,4,5,6] x(2,3,2)", {floating({2, 3, 4, 5, 6})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return upsample_nearest(be, in[0], {2, 3, 2});
                   },
                   kBoth, kExact});
  cases.push_back({"pad", "x[2,5,6,7,16] causal time (2,0), space (1,1)",
                   {floating({2, 5, 6, 7, 16})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return pad(be, in[0], {{0, 0}, {2, 0}, {1, 1}, {1, 1}, {0, 0}});
                   },
                   kBoth, kExact});
  cases.push_back({"pad", "x[3,10] (1,2),(0,3)", {floating({3, 10})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return pad(be, in[0], {{1, 2}, {0, 3}});
                   },
                   kBoth, kExact});
}

void add_transfers(std::vector<Case>& cases, Harness& h) {
  // On the CPU side the op is the identity; on the GPU side a round trip.
  cases.push_back({"transfer", "cuda -> cpu -> cuda of x[123,457]", {floating({123, 457})},
                   [&h](Backend& be, const std::vector<Tensor>& in) {
                     if (be.device().is_cpu()) return in[0];
                     return transfer(h.host(), transfer(be, in[0], h.host()), be);
                   },
                   kBoth, kExact});
  cases.push_back({"transfer", "cuda -> cuda (same device) of x = [64,33]^T",
                   {floating({64, 33})},
                   [](Backend& be, const std::vector<Tensor>& in) {
                     return transfer(be, in[0].transpose(0, 1), be);
                   },
                   kBoth, kExact});
}

}  // namespace

void add_data_cases(std::vector<Case>& cases, Harness& h) {
  add_casts(cases);
  add_copies(cases);
  add_resampling(cases);
  add_transfers(cases, h);
}

}  // namespace ditserve::gpu_check
