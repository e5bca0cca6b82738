#include "parallel/spatial_shards.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "comm/collectives.h"
#include "kernels/attention.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/resample.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

std::vector<std::int64_t> band_starts(const Bands& x, std::int64_t dim) {
  std::vector<std::int64_t> starts(x.size() + 1, 0);
  for (std::size_t i = 0; i < x.size(); ++i) starts[i + 1] = starts[i] + x[i].size(dim);
  return starts;
}

std::int64_t positions(const Tensor& band) { return band.numel() / (band.size(0) * band.size(-1)); }

}  // namespace

SpatialShardContext::SpatialShardContext(Backend& be)
    : group_{{0}}, backends_{&be}, host_(make_backend(Device::cpu())) {}

SpatialShardContext::SpatialShardContext(Fabric& fabric, DeviceGroup group)
    : SpatialShardContext(fabric, std::move(group), MemberParams{}) {}

SpatialShardContext::SpatialShardContext(Fabric& fabric, DeviceGroup group, MemberParams own)
    : fabric_(&fabric),
      group_(std::move(group)),
      host_(make_backend(Device::cpu())),
      own_(std::move(own)) {
  group_.validate(fabric);
  for (const int rank : group_.ranks) backends_.push_back(&fabric.device(rank));
  index_member_params();
}

void SpatialShardContext::index_member_params() {
  if (own_.members.empty()) return;
  DITSERVE_CHECK(static_cast<int>(own_.members.size()) == size(), "params: ",
                 own_.members.size(), " member listings for ", size(), " members");
  for (int i = 0; i < size(); ++i) {
    const std::vector<Tensor>& mine = own_.members[static_cast<std::size_t>(i)];
    if (mine.empty()) continue;
    DITSERVE_CHECK(mine.size() == own_.model.size(), "params: member ", i, " lists ",
                   mine.size(), " parameters, the model ", own_.model.size());
    for (std::size_t j = 0; j < mine.size(); ++j) {
      const Tensor& theirs = own_.model[j];
      const Tensor& t = mine[j];
      DITSERVE_CHECK(t.defined() == theirs.defined() &&
                         (!t.defined() || (t.shape() == theirs.shape() &&
                                           t.dtype() == theirs.dtype() &&
                                           t.device() == backend(i).device())),
                     "params: member ", i, "'s parameter ", j, " is ",
                     t.defined() ? t.describe() : std::string("undefined"), ", the model's ",
                     theirs.defined() ? theirs.describe() : std::string("undefined"),
                     "; it must match the model's on ", backend(i).device().str());
    }
  }
  for (std::size_t j = 0; j < own_.model.size(); ++j) {
    const Tensor& t = own_.model[j];
    if (t.defined()) own_index_.emplace(std::make_tuple(t.raw_data(), t.shape(), t.strides()), j);
  }
}

SpatialShardContext::~SpatialShardContext() = default;

Backend& SpatialShardContext::backend(int member) const {
  DITSERVE_CHECK(member >= 0 && member < size(), "SpatialShardContext: member ", member,
                 " out of range for ", size(), " members");
  return *backends_[static_cast<std::size_t>(member)];
}

int SpatialShardContext::rank_of(const Tensor& t) const {
  for (int r = 0; r < fabric_->size(); ++r) {
    if (fabric_->device(r).device() == t.device()) return r;
  }
  throw InvalidArgument("SpatialShardContext: " + t.describe() +
                        " lives on a device outside the fabric");
}

Tensor SpatialShardContext::param(const Tensor& t, int member) {
  Backend& be = backend(member);
  if (!t.defined() || t.device() == be.device()) return t;
  DITSERVE_CHECK(fabric_ != nullptr, "SpatialShardContext: parameter ", t.describe(),
                 " is not on the context's device ", be.device().str());
  const std::vector<Tensor>* mine =
      own_.members.empty() ? nullptr : &own_.members[static_cast<std::size_t>(member)];
  if (mine != nullptr && !mine->empty()) {
    const auto listed = own_index_.find(std::make_tuple(t.raw_data(), t.shape(), t.strides()));
    if (listed != own_index_.end()) return (*mine)[listed->second];
  }
  const auto key = std::make_tuple(t.raw_data(), member, t.shape());
  const auto found = params_.find(key);
  if (found != params_.end()) return found->second.second;
  const Tensor copy = be.empty(t.shape(), t.dtype());
  fabric_->copy(rank_of(t), t, group_.ranks[static_cast<std::size_t>(member)], copy);
  param_bytes_copied_ += static_cast<std::int64_t>(copy.nbytes());
  // The source is kept too, so its address cannot be reused by another tensor.
  params_.emplace(key, std::make_pair(t, copy));
  return copy;
}

Tensor SpatialShardContext::on_host(const Tensor& t) {
  const auto key = std::make_tuple(t.raw_data(), t.shape());
  const auto found = host_params_.find(key);
  if (found != host_params_.end()) return found->second.second;
  Backend& from = fabric_ != nullptr ? fabric_->device(rank_of(t)) : backend(0);
  Tensor copy = transfer(from, t, *host_);
  if (copy.dtype() != DType::f32) copy = cast(*host_, copy, DType::f32);
  host_params_.emplace(key, std::make_pair(t, copy));
  return copy;
}

Tensor SpatialShardContext::ones_on(int member, std::int64_t length) {
  const auto key = std::make_pair(member, length);
  const auto found = ones_.find(key);
  if (found != ones_.end()) return found->second;
  const Tensor host =
      Tensor::from_vector(std::vector<float>(static_cast<std::size_t>(length), 1.0f), {length, 1});
  const Tensor ones = transfer(*host_, host, backend(member));
  ones_.emplace(key, ones);
  return ones;
}

void SpatialShardContext::check_bands(const char* op, const Bands& x) const {
  DITSERVE_CHECK(static_cast<int>(x.size()) == size(), "SpatialShardContext::", op, ": ", x.size(),
                 " bands for ", size(), " members");
  for (int i = 0; i < size(); ++i) {
    const Tensor& b = x[static_cast<std::size_t>(i)];
    DITSERVE_CHECK(b.defined() && b.device() == backend(i).device(), "SpatialShardContext::", op,
                   ": band ", i, " is ", b.defined() ? b.describe() : std::string("undefined"),
                   " but member ", i, " is ", backend(i).device().str());
  }
}

Bands SpatialShardContext::split(const Tensor& full, std::int64_t dim) {
  DITSERVE_CHECK(full.defined() && dim >= 0 && dim < full.dim(), "SpatialShardContext::split: dim ",
                 dim, " outside ", full.defined() ? full.describe() : std::string("undefined"));
  if (single() && full.device() == backend(0).device()) return {full};
  if (fabric_ == nullptr) {
    DITSERVE_CHECK(full.device() == backend(0).device(),
                   "SpatialShardContext::split: ", full.describe(), " is not on ",
                   backend(0).device().str());
    return {full};
  }
  const std::vector<std::int64_t> sizes = even_split(full.size(dim), size());
  DITSERVE_CHECK(full.size(dim) >= size(), "rows: ", full.size(dim), " rows along dim ", dim,
                 " of ", full.describe(), " cannot be cut into ", size(), " non-empty bands");
  const int from = rank_of(full);
  Bands out;
  std::int64_t start = 0;
  for (int i = 0; i < size(); ++i) {
    const Tensor piece = full.narrow(dim, start, sizes[static_cast<std::size_t>(i)]);
    Tensor band = backend(i).empty(piece.shape(), full.dtype());
    fabric_->copy(from, piece, group_.ranks[static_cast<std::size_t>(i)], band);
    out.push_back(band);
    start += sizes[static_cast<std::size_t>(i)];
  }
  return out;
}

void SpatialShardContext::gather_into(const Bands& x, std::int64_t dim, const Tensor& dst) {
  check_bands("gather_into", x);
  if (fabric_ == nullptr) {
    copy_into(backend(0), dst, x[0]);
    return;
  }
  const std::vector<std::int64_t> starts = band_starts(x, dim);
  DITSERVE_CHECK(dst.dim() == x[0].dim() && dst.size(dim) == starts.back(),
                 "SpatialShardContext::gather_into: dst ", dst.describe(), " does not hold ",
                 starts.back(), " rows along dim ", dim);
  for (int i = 0; i < size(); ++i) {
    const Tensor& band = x[static_cast<std::size_t>(i)];
    fabric_->copy(group_.ranks[static_cast<std::size_t>(i)], band, group_.ranks[0],
                  dst.narrow(dim, starts[static_cast<std::size_t>(i)], band.size(dim)));
    if (i != 0) bytes_exchanged_ += static_cast<std::int64_t>(band.nbytes());
  }
}

Tensor SpatialShardContext::gather(const Bands& x, std::int64_t dim) {
  check_bands("gather", x);
  if (single() && x[0].device() == backend(0).device()) return x[0];
  Shape shape = x[0].shape();
  shape[static_cast<std::size_t>(dim)] = band_starts(x, dim).back();
  const Tensor out = backend(0).empty(shape, x[0].dtype());
  gather_into(x, dim, out);
  return out;
}

Bands SpatialShardContext::map(const Bands& x, const BandFn& fn) {
  check_bands("map", x);
  Bands out;
  out.reserve(x.size());
  for (int i = 0; i < size(); ++i) out.push_back(fn(backend(i), i, x[static_cast<std::size_t>(i)]));
  return out;
}

Bands SpatialShardContext::zip(const Bands& a, const Bands& b, const ZipFn& fn) {
  check_bands("zip", a);
  check_bands("zip", b);
  Bands out;
  out.reserve(a.size());
  for (int i = 0; i < size(); ++i) {
    out.push_back(
        fn(backend(i), i, a[static_cast<std::size_t>(i)], b[static_cast<std::size_t>(i)]));
  }
  return out;
}

Tensor SpatialShardContext::rows_on(const Bands& x, std::int64_t dim, std::int64_t lo,
                                    std::int64_t hi, int m) {
  const std::vector<std::int64_t> starts = band_starts(x, dim);
  const std::int64_t from = std::max<std::int64_t>(lo, 0);
  const std::int64_t until = std::min(hi, starts.back());
  Shape shape = x[0].shape();
  shape[static_cast<std::size_t>(dim)] = until - from;
  Tensor out = backend(m).empty(shape, x[0].dtype());
  for (int j = 0; j < size(); ++j) {
    const std::int64_t a = std::max(from, starts[static_cast<std::size_t>(j)]);
    const std::int64_t b = std::min(until, starts[static_cast<std::size_t>(j) + 1]);
    if (a >= b) continue;
    const Tensor src =
        x[static_cast<std::size_t>(j)].narrow(dim, a - starts[static_cast<std::size_t>(j)], b - a);
    fabric_->copy(group_.ranks[static_cast<std::size_t>(j)], src,
                  group_.ranks[static_cast<std::size_t>(m)], out.narrow(dim, a - from, b - a));
    if (j != m) bytes_exchanged_ += static_cast<std::int64_t>(src.nbytes());
  }
  if (from == lo && until == hi) return out;
  std::vector<std::pair<std::int64_t, std::int64_t>> pads(static_cast<std::size_t>(out.dim()),
                                                          {0, 0});
  pads[static_cast<std::size_t>(dim)] = {from - lo, hi - until};
  return pad(backend(m), out, pads);
}

Bands SpatialShardContext::halo_conv(const Bands& x, std::int64_t dim, int halo, const ConvFn& fn) {
  check_bands("halo_conv", x);
  DITSERVE_CHECK(halo >= 0, "SpatialShardContext::halo_conv: halo must be >= 0, got ", halo);
  if (single() || halo == 0) {
    return map(x, [&](Backend& be, int m, const Tensor& band) { return fn(be, m, band, halo); });
  }
  const std::vector<std::int64_t> starts = band_starts(x, dim);
  Bands out;
  out.reserve(x.size());
  for (int i = 0; i < size(); ++i) {
    const Tensor input = rows_on(x, dim, starts[static_cast<std::size_t>(i)] - halo,
                                 starts[static_cast<std::size_t>(i) + 1] + halo, i);
    out.push_back(fn(backend(i), i, input, 0));
  }
  return out;
}

std::vector<double> SpatialShardContext::reduced_channel_sums(const Bands& xs) {
  std::vector<Tensor> sums;
  for (int i = 0; i < size(); ++i) {
    const Tensor& x = xs[static_cast<std::size_t>(i)];  // [N, S_i, C] f32 contiguous
    sums.push_back(matmul(backend(i), x.transpose(1, 2), ones_on(i, x.size(1))));  // [N, C, 1]
  }
  const std::vector<Tensor> total = all_reduce(*fabric_, group_, sums);
  const Tensor host = transfer(backend(0), total[0], *host_);
  const std::vector<float> v = host.to_vector_f32();
  return {v.begin(), v.end()};
}

Bands SpatialShardContext::group_norm(const Bands& x, int groups, const Tensor& weight,
                                      const Tensor& bias, float eps) {
  check_bands("group_norm", x);
  if (single()) {
    return {ditserve::group_norm(backend(0), x[0], groups, param(weight, 0), param(bias, 0), eps)};
  }
  const std::int64_t n = x[0].size(0), c = x[0].size(-1);
  DITSERVE_CHECK(groups > 0 && c % groups == 0, "SpatialShardContext::group_norm: ", groups,
                 " groups do not divide ", c, " channels");
  const std::int64_t per_group = c / groups;
  std::int64_t count = 0;
  Bands xs;  // [N, S_i, C] f32
  for (int i = 0; i < size(); ++i) {
    const Tensor& band = x[static_cast<std::size_t>(i)];
    Backend& be = backend(i);
    const Tensor f = band.dtype() == DType::f32 ? contiguous(be, band) : cast(be, band, DType::f32);
    xs.push_back(f.view({n, positions(band), c}));
    count += positions(band);
  }
  const double group_count = static_cast<double>(count * per_group);
  // Pass 1: the mean of every (sample, group), broadcast back over its channels.
  const std::vector<double> sums = reduced_channel_sums(xs);
  std::vector<double> mean(static_cast<std::size_t>(n * groups), 0.0);
  for (std::int64_t s = 0; s < n; ++s) {
    for (std::int64_t ch = 0; ch < c; ++ch) mean[s * groups + ch / per_group] += sums[s * c + ch];
  }
  for (double& m : mean) m /= group_count;
  std::vector<float> mean_c(static_cast<std::size_t>(n * c));
  for (std::int64_t s = 0; s < n; ++s) {
    for (std::int64_t ch = 0; ch < c; ++ch) {
      mean_c[s * c + ch] = static_cast<float>(mean[s * groups + ch / per_group]);
    }
  }
  const Tensor mean_host = Tensor::from_vector(mean_c, {n, 1, c});
  Bands centred;
  for (int i = 0; i < size(); ++i) {
    Backend& be = backend(i);
    centred.push_back(
        add_scaled(be, xs[static_cast<std::size_t>(i)], transfer(*host_, mean_host, be), -1.0f));
  }
  // Pass 2: the variance from the centred squares (no cancellation).
  Bands squares;
  for (int i = 0; i < size(); ++i) {
    const Tensor& d = centred[static_cast<std::size_t>(i)];
    squares.push_back(mul(backend(i), d, d));
  }
  const std::vector<double> sq = reduced_channel_sums(squares);
  std::vector<double> var(static_cast<std::size_t>(n * groups), 0.0);
  for (std::int64_t s = 0; s < n; ++s) {
    for (std::int64_t ch = 0; ch < c; ++ch) var[s * groups + ch / per_group] += sq[s * c + ch];
  }
  const std::vector<float> w = weight.defined()
                                   ? on_host(weight).to_vector_f32()
                                   : std::vector<float>(static_cast<std::size_t>(c), 1.0f);
  const std::vector<float> b = bias.defined()
                                   ? on_host(bias).to_vector_f32()
                                   : std::vector<float>(static_cast<std::size_t>(c), 0.0f);
  std::vector<float> scale(static_cast<std::size_t>(n * c)), shift(static_cast<std::size_t>(n * c));
  for (std::int64_t s = 0; s < n; ++s) {
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const double rstd = 1.0 / std::sqrt(var[s * groups + ch / per_group] / group_count + eps);
      scale[s * c + ch] = static_cast<float>(rstd * w[ch]);
      shift[s * c + ch] = b[ch];
    }
  }
  const Tensor scale_host = Tensor::from_vector(scale, {n, 1, c});
  const Tensor shift_host = Tensor::from_vector(shift, {n, 1, c});
  Bands out;
  for (int i = 0; i < size(); ++i) {
    Backend& be = backend(i);
    const Tensor& band = x[static_cast<std::size_t>(i)];
    Tensor y =
        add(be, mul(be, centred[static_cast<std::size_t>(i)], transfer(*host_, scale_host, be)),
            transfer(*host_, shift_host, be));
    if (band.dtype() != DType::f32) y = cast(be, y, band.dtype());
    out.push_back(y.view(band.shape()));
  }
  return out;
}

Bands SpatialShardContext::attention(const Bands& q, const Bands& k, const Bands& v) {
  check_bands("attention", q);
  check_bands("attention", k);
  check_bands("attention", v);
  if (single()) return {ditserve::attention(backend(0), q[0], k[0], v[0])};
  const std::vector<Tensor> keys = all_gather(*fabric_, group_, k, 1);
  const std::vector<Tensor> values = all_gather(*fabric_, group_, v, 1);
  for (int i = 0; i < size(); ++i) {
    const std::int64_t others = static_cast<std::int64_t>(keys[0].nbytes()) -
                                static_cast<std::int64_t>(k[static_cast<std::size_t>(i)].nbytes());
    bytes_exchanged_ += 2 * others;
  }
  Bands out;
  for (int i = 0; i < size(); ++i) {
    out.push_back(ditserve::attention(backend(i), q[static_cast<std::size_t>(i)],
                                      keys[static_cast<std::size_t>(i)],
                                      values[static_cast<std::size_t>(i)]));
  }
  return out;
}

}  // namespace ditserve
