#include "parallel/sequence_parallel.h"

#include <string>

#include "comm/collectives.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

void check_members(const Fabric& fabric, const DeviceGroup& group,
                   const std::vector<SpatioTemporalStages*>& members) {
  group.validate(fabric);
  DITSERVE_CHECK(members.size() == group.ranks.size(), "sequence-parallel step: ",
                 members.size(), " members' stages for a group of ", group.size());
  for (std::size_t i = 0; i < members.size(); ++i) {
    DITSERVE_CHECK(members[i] != nullptr, "sequence-parallel step: member ", i,
                   " has no stages");
    const Device want = fabric.device(group.ranks[i]).device();
    DITSERVE_CHECK(members[i]->backend().device() == want, "sequence-parallel step: member ",
                   i, "'s stages run on ", members[i]->backend().device().str(),
                   " but its rank ", group.ranks[i], " is ", want.str());
    DITSERVE_CHECK(members[i]->depth() == members[0]->depth(),
                   "sequence-parallel step: member ", i, " has depth ", members[i]->depth(),
                   ", member 0 has ", members[0]->depth());
  }
}

std::vector<std::int64_t> offsets(const std::vector<std::int64_t>& sizes) {
  std::vector<std::int64_t> out(sizes.size(), 0);
  for (std::size_t i = 1; i < sizes.size(); ++i) out[i] = out[i - 1] + sizes[i - 1];
  return out;
}

}  // namespace

std::vector<Tensor> SequenceParallelStep::forward_frame_sharded(
    Fabric& fabric, const DeviceGroup& group, const std::vector<SpatioTemporalStages*>& members) {
  const Tensor out = forward(fabric, group, members);
  return scatter(fabric, group, out, 0, /*dim=*/2, even_split(out.size(2), group.size()));
}

std::vector<Tensor> FramePositionParallel::blocks(Fabric& fabric, const DeviceGroup& group,
                                                  const std::vector<SpatioTemporalStages*>& members,
                                                  std::vector<std::int64_t>* first_frame) {
  check_members(fabric, group, members);
  const int k = group.size();
  const std::size_t n = members.size();

  std::vector<Tensor> grids(n);
  for (std::size_t i = 0; i < n; ++i) {
    grids[i] = members[i]->embed();
    DITSERVE_CHECK(grids[i].dim() == 4 && grids[i].shape() == grids[0].shape(),
                   "sequence-parallel step: member ", i, " embedded ", grids[i].describe(),
                   ", member 0 ", grids[0].describe(), " (members must share the inputs)");
  }
  const std::vector<std::int64_t> frames = even_split(grids[0].size(1), k);
  const std::vector<std::int64_t> positions = even_split(grids[0].size(2), k);
  *first_frame = offsets(frames);

  std::vector<Tensor> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = grids[i].narrow(1, (*first_frame)[i], frames[i]);
  grids.clear();

  for (std::int64_t b = 0; b < members[0]->depth(); ++b) {
    for (std::size_t i = 0; i < n; ++i) {
      if (frames[i] > 0) x[i] = members[i]->spatial_block(b, x[i]);
    }
    // [B, F_i, S, C] on member i -> [B, T, P_j, C] on member j.
    if (k > 1) x = all_to_all(fabric, group, x, /*split_dim=*/2, positions, /*concat_dim=*/1);
    for (std::size_t i = 0; i < n; ++i) {
      if (positions[i] > 0) x[i] = members[i]->temporal_block(b, x[i]);
    }
    if (k > 1) x = all_to_all(fabric, group, x, /*split_dim=*/1, frames, /*concat_dim=*/2);
  }
  return x;
}

Tensor FramePositionParallel::forward(Fabric& fabric, const DeviceGroup& group,
                                      const std::vector<SpatioTemporalStages*>& members) {
  std::vector<std::int64_t> first_frame;
  const std::vector<Tensor> x = blocks(fabric, group, members, &first_frame);
  const Tensor tokens = group.size() > 1 ? gather(fabric, group, x, /*dim=*/1, /*root=*/0) : x[0];
  return members[0]->final(tokens);
}

std::vector<Tensor> FramePositionParallel::forward_frame_sharded(
    Fabric& fabric, const DeviceGroup& group, const std::vector<SpatioTemporalStages*>& members) {
  check_members(fabric, group, members);
  if (!members[0]->has_final_frames()) {
    return SequenceParallelStep::forward_frame_sharded(fabric, group, members);
  }
  std::vector<std::int64_t> first_frame;
  const std::vector<Tensor> x = blocks(fabric, group, members, &first_frame);
  std::vector<Tensor> out(x.size());
  std::size_t some = x.size();
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (x[i].size(1) == 0) continue;
    out[i] = members[i]->final_frames(x[i], first_frame[i]);
    some = i;
  }
  // Members without frames get an empty piece of the same layout.
  Shape empty = out[some].shape();
  empty[2] = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!out[i].defined()) out[i] = members[i]->backend().empty(empty, out[some].dtype());
  }
  // Token frames cover whole latent frames only when the patch is 1 frame deep; any other
  // split falls back to gathering and scattering the prediction.
  std::int64_t total = 0;
  for (const Tensor& t : out) total += t.size(2);
  const std::vector<std::int64_t> want = even_split(total, group.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i].size(2) != want[i]) {
      const Tensor whole = gather(fabric, group, out, /*dim=*/2, /*root=*/0);
      return scatter(fabric, group, whole, 0, /*dim=*/2, want);
    }
  }
  return out;
}

}  // namespace ditserve
