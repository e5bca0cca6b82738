#pragma once
// Patch parallelism for convolutional models (a VAE decoder): every activation is cut into
// bands of consecutive rows along its height, one band per member of a DeviceGroup, and
// the model calls the few operations that look across a band's edge through this context:
//   - a spatial convolution first exchanges `halo` rows with the neighbouring bands, so
//     each band is convolved with its true neighbour rows and zero padding only at the
//     image border, exactly as the single-device convolution pads;
//   - a GroupNorm all-reduces its sums (two passes: mean, then centred squares), so the
//     statistics are those of the whole image;
//   - attention over all positions gathers the keys and values of every band.
// Everything else (activations, 1x1 convs, residual adds, nearest upsampling, which keeps
// the bands aligned) runs on each band alone through map()/zip().
//
// A context over one Backend (no fabric) runs every operation as the plain kernel call
// with the model's own tensors, so a model written against this context gives the same
// bits as its single-device code.
//
// Parameters: the model that drives a decode is one object on one device, and every op it
// runs on a band asks param(t, member) for its tensor on that member's device. Where the
// caller knows each member's own copy of the model (a serving runtime has loaded it on
// every device), it hands the context both listings (MemberParams) and param() returns the
// member's own tensor: a decode copies no parameters. Where a member holds no copy (tests,
// one-model callers), param() copies the driving model's tensor there once per context.
// Why per-member listings rather than one long-lived context per group in the caller: a
// cached context still copies once per group and then keeps a second copy of the model
// on every member for as long as it lives, and groups change from decode to decode; the
// listings are checked once (counts, shapes, dtypes, devices) when the context is built,
// the context holds the tensors it is given (no references into its caller), and it
// depends only on tensors, not on the models or the runtime above it.
//
// One controller thread drives all members (like the collectives); not thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "comm/fabric.h"

namespace ditserve {

// One tensor per member, on its device; together the rows of one activation in member
// order along the height dim the operation names. Every band holds at least one row.
using Bands = std::vector<Tensor>;

// The driving model's parameters and each member's own copy of them. `model[j]` and
// `members[i][j]` are the same parameter (same shape and dtype; undefined in both for an
// absent one), the latter on member i's device; `members[i]` is empty where member i holds
// no copy. `members` is empty or has one entry per member.
struct MemberParams {
  std::vector<Tensor> model;
  std::vector<std::vector<Tensor>> members;
};

class SpatialShardContext {
 public:
  // One device: the plain single-device path.
  explicit SpatialShardContext(Backend& be);
  // Bands over `group`'s members (validated). The fabric must outlive the context.
  SpatialShardContext(Fabric& fabric, DeviceGroup group);
  // The same, with members using their own parameters where `own` lists them. Throws
  // InvalidArgument naming "params" (and the member and index) when a listing does not
  // match the model's or lives on another device than its member's.
  SpatialShardContext(Fabric& fabric, DeviceGroup group, MemberParams own);
  ~SpatialShardContext();
  SpatialShardContext(const SpatialShardContext&) = delete;
  SpatialShardContext& operator=(const SpatialShardContext&) = delete;

  int size() const { return static_cast<int>(backends_.size()); }
  // One member: every operation is the plain kernel call (no exchange, no copies).
  bool single() const { return size() == 1; }
  Backend& backend(int member) const;

  // A model parameter (living on any device of the fabric, or the single backend) on
  // member's device: `t` itself when it lives there; else the member's own copy when the
  // context was given one (MemberParams); else a copy made on first use and kept for the
  // context's lifetime (so one context serves many decodes). Undefined tensors (absent
  // biases) pass through.
  Tensor param(const Tensor& t, int member);

  // `full` (on any device of the fabric) cut along `dim` into even_split bands. Throws
  // InvalidArgument naming "rows" when there are fewer rows than members.
  Bands split(const Tensor& full, std::int64_t dim);
  // The bands written into `dst` (on member 0, any strides, the whole tensor's shape).
  void gather_into(const Bands& x, std::int64_t dim, const Tensor& dst);
  // The whole tensor on member 0.
  Tensor gather(const Bands& x, std::int64_t dim);

  using BandFn = std::function<Tensor(Backend& be, int member, const Tensor& band)>;
  using ZipFn = std::function<Tensor(Backend& be, int member, const Tensor& a, const Tensor& b)>;
  // fn on every band alone (no exchange).
  Bands map(const Bands& x, const BandFn& fn);
  Bands zip(const Bands& a, const Bands& b, const ZipFn& fn);

  // A stride-1 spatial convolution along `dim` that needs `halo` rows of context on each
  // side: fn(be, member, input, row_padding) must convolve `input` with `row_padding`
  // zero rows on each side of `dim` and return as many rows as its band has. On one
  // device fn gets the band itself and row_padding = halo (the plain conv); on several,
  // the band extended by its neighbours' rows (zeros beyond the image) and 0.
  using ConvFn =
      std::function<Tensor(Backend& be, int member, const Tensor& input, int row_padding)>;
  Bands halo_conv(const Bands& x, std::int64_t dim, int halo, const ConvFn& fn);

  // GroupNorm of channels-last bands [N, *spatial, C] with the statistics of the whole
  // activation (kernels/norm.h's group_norm on one device).
  Bands group_norm(const Bands& x, int groups, const Tensor& weight, const Tensor& bias, float eps);

  // Attention of each band's queries q [N, Sq_i, H, D] over the keys and values of all
  // bands (k, v [N, Sk_i, H, D], concatenated in member order along dim 1).
  Bands attention(const Bands& q, const Bands& k, const Bands& v);

  // Bytes copied between devices by halo exchanges and gathers so far (not params).
  std::int64_t bytes_exchanged() const { return bytes_exchanged_; }
  // Bytes of parameters param() copied to members that had no copy of their own.
  std::int64_t param_bytes_copied() const { return param_bytes_copied_; }

 private:
  void check_bands(const char* op, const Bands& x) const;
  // Rows [lo, hi) of the activation (bands along dim), clipped to the image, on member m.
  Tensor rows_on(const Bands& x, std::int64_t dim, std::int64_t lo, std::int64_t hi, int m);
  Tensor ones_on(int member, std::int64_t length);  // f32 [length, 1]
  Tensor on_host(const Tensor& t);                  // f32 host copy of a parameter, cached
  // Per-member f32 [N, C] sums over positions of xs[i] ([N, S_i, C] f32), all-reduced and
  // copied to the host.
  std::vector<double> reduced_channel_sums(const Bands& xs);
  int rank_of(const Tensor& t) const;
  // Checks `own_` against the model's listing and indexes the model's tensors.
  void index_member_params();

  Fabric* fabric_ = nullptr;  // null: single device
  DeviceGroup group_;
  std::vector<Backend*> backends_;
  std::unique_ptr<Backend> host_;
  MemberParams own_;
  // The model's parameters by address, shape and strides: their index in own_.model.
  std::map<std::tuple<const void*, Shape, Shape>, std::size_t> own_index_;
  std::map<std::tuple<const void*, int, Shape>, std::pair<Tensor, Tensor>> params_;
  std::map<std::tuple<const void*, Shape>, std::pair<Tensor, Tensor>> host_params_;
  std::map<std::pair<int, std::int64_t>, Tensor> ones_;
  std::int64_t bytes_exchanged_ = 0;
  std::int64_t param_bytes_copied_ = 0;
};

}  // namespace ditserve
