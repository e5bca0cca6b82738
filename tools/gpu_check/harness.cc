#include "harness.h"

#include <cmath>
#include <random>
#include <sstream>

#include "kernels/copy.h"
#include "tensor/error.h"

namespace ditserve::gpu_check {
namespace {

// Uniform floats in [offset - scale, offset + scale), never exactly zero.
Tensor random_floats(const Shape& shape, float scale, float offset, std::mt19937_64& rng) {
  Tensor t = Tensor::empty_host(shape, DType::f32);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    float v = offset + scale * dist(rng);
    if (v == 0.0f) v = scale * 1e-3f + 1e-6f;
    p[i] = v;
  }
  return t;
}

Tensor random_ints(const Input& in, std::mt19937_64& rng) {
  Tensor t = Tensor::empty_host(in.shape, in.kind == InputKind::lengths ? DType::i32 : in.int_dtype);
  const std::int64_t lo = in.kind == InputKind::lengths ? 1 : 0;
  const std::int64_t hi = in.kind == InputKind::lengths ? in.limit : in.limit - 1;
  std::uniform_int_distribution<std::int64_t> dist(lo, hi);
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    const std::int64_t v = in.kind == InputKind::lengths && i == 0 ? in.limit : dist(rng);
    if (t.dtype() == DType::i64) {
      t.data<std::int64_t>()[i] = v;
    } else {
      t.data<std::int32_t>()[i] = static_cast<std::int32_t>(v);
    }
  }
  return t;
}

Tensor make_input(const Input& in, std::mt19937_64& rng) {
  switch (in.kind) {
    case InputKind::floating:
      return random_floats(in.shape, in.scale, in.offset, rng);
    case InputKind::f32:
      return in.given.defined() ? in.given : random_floats(in.shape, in.scale, in.offset, rng);
    case InputKind::ids:
    case InputKind::lengths:
      return random_ints(in, rng);
  }
  throw Error("gpu_check: unknown input kind");
}

// ||got - want|| / ||want||, NaN when a value is not finite or the shapes differ.
double relative_error(const Tensor& got, const Tensor& want, std::string& detail) {
  if (got.shape() != want.shape()) {
    detail = "shape " + shape_str(got.shape()) + " differs from the reference's " +
             shape_str(want.shape());
    return NAN;
  }
  const std::vector<float> g = got.to_vector_f32(), w = want.to_vector_f32();
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) {
      detail = "non-finite value " + std::to_string(g[i]) + " at element " + std::to_string(i);
      return NAN;
    }
    const double d = static_cast<double>(g[i]) - w[i];
    diff += d * d;
    norm += static_cast<double>(w[i]) * w[i];
  }
  if (norm == 0.0) return std::sqrt(diff);  // all-zero reference: absolute error
  return std::sqrt(diff / norm);
}

}  // namespace

Input floating(Shape shape, float scale, float offset) {
  Input in;
  in.shape = std::move(shape);
  in.scale = scale;
  in.offset = offset;
  return in;
}
Input fixed_f32(Shape shape, float scale, float offset) {
  Input in = floating(std::move(shape), scale, offset);
  in.kind = InputKind::f32;
  return in;
}
Input given_f32(Tensor host_values) {
  Input in;
  in.kind = InputKind::f32;
  in.shape = host_values.shape();
  in.given = std::move(host_values);
  return in;
}
Input ids(Shape shape, std::int64_t limit, DType dtype) {
  Input in;
  in.kind = InputKind::ids;
  in.shape = std::move(shape);
  in.limit = limit;
  in.int_dtype = dtype;
  return in;
}
Input lengths(std::int64_t batch, std::int64_t max_length) {
  Input in;
  in.kind = InputKind::lengths;
  in.shape = {batch};
  in.limit = max_length;
  return in;
}

double threshold_for(DType dtype, bool exact) {
  if (exact) return 0.0;
  return dtype == DType::f32 ? 1e-5 : 1e-2;
}

Harness::Harness(Device target)
    : host_(make_backend(Device::cpu())), gpu_(make_backend(target)) {}

std::vector<Result> Harness::run(const Case& c, std::uint64_t seed) {
  std::vector<Result> results;
  std::vector<Tensor> inputs;
  std::string setup_error;
  try {
    std::mt19937_64 rng(seed);
    for (const Input& in : c.inputs) inputs.push_back(make_input(in, rng));
  } catch (const std::exception& e) {
    setup_error = std::string("input generation failed: ") + e.what();
  }
  for (const DType dtype : c.dtypes) {
    const double threshold = dtype == DType::f32 && c.f32_threshold > 0
                                 ? c.f32_threshold
                                 : threshold_for(dtype, c.exact);
    Result r{c.op, std::string(dtype_name(dtype)), c.shape, NAN, threshold, false, setup_error};
    if (!setup_error.empty()) {
      results.push_back(r);
      continue;
    }
    try {
      // Floating inputs in this dtype: rounded copies (f32) for the CPU, casts for the GPU.
      std::vector<Tensor> cpu_in, gpu_in;
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        const Tensor& t = inputs[i];
        if (c.inputs[i].kind == InputKind::floating && dtype != DType::f32) {
          const Tensor typed = cast(host(), t, dtype);
          cpu_in.push_back(cast(host(), typed, DType::f32));
          gpu_in.push_back(transfer(host(), typed, gpu()));
        } else {
          cpu_in.push_back(t);
          gpu_in.push_back(transfer(host(), t, gpu()));
        }
      }
      const Tensor want = c.run(host(), cpu_in);
      const Tensor got = transfer(gpu(), c.run(gpu(), gpu_in), host());
      r.rel_error = relative_error(got, want, r.error);
      r.pass = std::isfinite(r.rel_error) && r.rel_error <= r.threshold;
    } catch (const std::exception& e) {
      r.error = e.what();
      r.pass = false;
    }
    results.push_back(r);
  }
  return results;
}

}  // namespace ditserve::gpu_check
