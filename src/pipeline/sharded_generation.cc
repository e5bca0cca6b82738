#include "pipeline/sharded_generation.h"

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>

#include "comm/collectives.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

constexpr std::int64_t kFrameDim = 2;  // latents [1, C, T, h, w]

std::vector<std::int64_t> starts_of(const std::vector<std::int64_t>& sizes) {
  std::vector<std::int64_t> out(sizes.size() + 1, 0);
  for (std::size_t i = 0; i < sizes.size(); ++i) out[i + 1] = out[i] + sizes[i];
  return out;
}

int member_of(const DeviceGroup& group, int rank) {
  const auto it = std::find(group.ranks.begin(), group.ranks.end(), rank);
  return it == group.ranks.end() ? -1 : static_cast<int>(it - group.ranks.begin());
}

// Copies of `tensors` (one per member of `from`) for the members of `to`: a member that
// was in `from` keeps its tensor, the others get a copy of from's first member's.
std::vector<Tensor> follow(Fabric& fabric, const DeviceGroup& from,
                           const std::vector<Tensor>& tensors, const DeviceGroup& to,
                           std::int64_t* moved, std::int64_t* kept) {
  std::vector<Tensor> out;
  for (const int rank : to.ranks) {
    const int old = member_of(from, rank);
    if (old >= 0) {
      out.push_back(tensors[static_cast<std::size_t>(old)]);
      *kept += static_cast<std::int64_t>(out.back().nbytes());
      continue;
    }
    const Tensor& src = tensors[0];
    Tensor dst = fabric.device(rank).empty(src.shape(), src.dtype());
    fabric.copy(from.ranks[0], src, rank, dst);
    *moved += static_cast<std::int64_t>(dst.nbytes());
    out.push_back(dst);
  }
  return out;
}

}  // namespace

DeviceGroup least_moving_order(const ShardedTensor& latents, const std::vector<int>& ranks) {
  DITSERVE_CHECK(!ranks.empty(), "least_moving_order: no ranks");
  const std::size_t k = ranks.size();
  DeviceGroup given{ranks};
  if (k > 8) return given;
  const std::int64_t rows = latents.rows();
  const std::vector<std::int64_t> old_starts = starts_of(even_split(rows, latents.group.size()));
  const std::vector<std::int64_t> new_starts = starts_of(even_split(rows, static_cast<int>(k)));
  // kept[r][j]: rows rank ranks[r] already holds of new slot j.
  std::vector<std::vector<std::int64_t>> kept(k, std::vector<std::int64_t>(k, 0));
  for (std::size_t r = 0; r < k; ++r) {
    const int old = member_of(latents.group, ranks[r]);
    if (old < 0) continue;
    for (std::size_t j = 0; j < k; ++j) {
      const std::int64_t lo = std::max(old_starts[static_cast<std::size_t>(old)], new_starts[j]);
      const std::int64_t hi =
          std::min(old_starts[static_cast<std::size_t>(old) + 1], new_starts[j + 1]);
      kept[r][j] = std::max<std::int64_t>(0, hi - lo);
    }
  }
  std::vector<std::size_t> order(k);
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::size_t> best = order;
  std::int64_t best_kept = -1;
  do {  // order[j]: the index in `ranks` that takes slot j
    std::int64_t total = 0;
    for (std::size_t j = 0; j < k; ++j) total += kept[order[j]][j];
    if (total > best_kept) {  // strictly better: ties keep the earlier (given) order
      best_kept = total;
      best = order;
    }
  } while (std::next_permutation(order.begin(), order.end()));
  DeviceGroup out;
  for (const std::size_t r : best) out.ranks.push_back(ranks[r]);
  return out;
}

ShardedGenerationState::ShardedGenerationState(ShardedTensor latents, std::vector<Tensor> captions,
                                               std::vector<Tensor> caption_lengths,
                                               SamplerOptions options, std::size_t step)
    : latents_(std::move(latents)),
      captions_(std::move(captions)),
      caption_lengths_(std::move(caption_lengths)),
      options_(options),
      timesteps_(rflow_timesteps(options.steps,
                                 rflow_shift_ratio(options.height, options.width, options.frames))),
      step_(step) {}

ShardedGenerationState ShardedGenerationState::shard(Fabric& fabric, const GenerationState& state,
                                                     int rank, const DeviceGroup& group) {
  DITSERVE_CHECK(state.options().sampler == SamplerKind::rectified_flow,
                 "sampler: a sharded state runs the rectified-flow sampler only (stateless "
                 "between steps), got ",
                 sampler_name(state.options().sampler));
  group.validate(fabric);
  const DeviceGroup holder{{rank}};
  holder.validate(fabric);
  const ShardedTensor whole = ditserve::shard(fabric, holder, state.latents(), 0, kFrameDim);
  StateMoveStats ignored;
  ShardedGenerationState out(whole, {state.captions()}, {state.caption_lengths()}, state.options(),
                             state.step_index());
  out.move_to(fabric, group, &ignored);
  return out;
}

GenerationState ShardedGenerationState::gather(Fabric& fabric, int member) const {
  DITSERVE_CHECK(member >= 0 && member < group().size(), "ShardedGenerationState::gather: member ",
                 member, " outside a group of ", group().size());
  return GenerationState(unshard(fabric, latents_, member),
                         captions_[static_cast<std::size_t>(member)],
                         caption_lengths_[static_cast<std::size_t>(member)], options_, step_);
}

void ShardedGenerationState::move_to(Fabric& fabric, const DeviceGroup& to, StateMoveStats* stats) {
  to.validate(fabric);
  StateMoveStats local;
  StateMoveStats& s = stats != nullptr ? *stats : local;
  ReshardStats reshard_stats;
  ShardedTensor latents = reshard(fabric, latents_, to, &reshard_stats);
  s.latent_bytes_moved += reshard_stats.bytes_moved;
  s.latent_bytes_kept += reshard_stats.bytes_kept;
  const DeviceGroup from = latents_.group;
  captions_ = follow(fabric, from, captions_, to, &s.caption_bytes_moved, &s.caption_bytes_kept);
  caption_lengths_ =
      follow(fabric, from, caption_lengths_, to, &s.caption_bytes_moved, &s.caption_bytes_kept);
  latents_ = std::move(latents);
}

void ShardedGenerationState::step(Fabric& fabric, SequenceParallelStep& scheme,
                                  const PrepareStages& prepare, bool sharded_prediction) {
  DITSERVE_CHECK(!done(), "ShardedGenerationState::step: all ", timesteps_.size(),
                 " steps are done");
  const DeviceGroup& group = latents_.group;
  const int k = group.size();
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const float t = timesteps_[step_];
  const Tensor timesteps = Tensor::from_vector({t, t}, {2});
  // Every member embeds the whole grid from its own copy of the latents.
  const std::vector<Tensor> whole = all_gather(fabric, group, latents_.shards, kFrameDim);
  std::vector<std::unique_ptr<SpatioTemporalStages>> owned;
  std::vector<SpatioTemporalStages*> members;
  for (int i = 0; i < k; ++i) {
    Backend& be = fabric.device(group.ranks[static_cast<std::size_t>(i)]);
    const Tensor& z = whole[static_cast<std::size_t>(i)];
    DenoiseInputs in;
    in.latents = concat(be, {z, z}, 0);
    in.timesteps = transfer(*host, timesteps, be);
    in.captions = captions_[static_cast<std::size_t>(i)];
    in.caption_lengths = caption_lengths_[static_cast<std::size_t>(i)];
    in.fps = options_.fps;
    in.height = options_.height;
    in.width = options_.width;
    owned.push_back(prepare(i, in));
    members.push_back(owned.back().get());
  }
  const std::int64_t channels = whole[0].size(1);
  const float dt = rflow_dt(timesteps_, step_);
  const auto check_prediction = [&](const Tensor& out, std::int64_t frames) {
    DITSERVE_CHECK(
        out.dim() == 5 && out.size(0) == 2 && out.size(1) >= channels && out.size(2) == frames,
        "ShardedGenerationState::step: the DiT returned ", out.describe(), " for latents ",
        whole[0].describe());
  };
  const auto guided = [&](Backend& be, const Tensor& out) {
    return apply_guidance(be, out.narrow(0, 0, 1).narrow(1, 0, channels),
                          out.narrow(0, 1, 1).narrow(1, 0, channels), options_.guidance);
  };
  std::vector<Tensor> pieces;  // member i's frames of the guided velocity
  if (sharded_prediction) {
    const std::vector<Tensor> outs = scheme.forward_frame_sharded(fabric, group, members);
    for (int i = 0; i < k; ++i) {
      const Tensor& out = outs[static_cast<std::size_t>(i)];
      check_prediction(out, latents_.shards[static_cast<std::size_t>(i)].size(kFrameDim));
      pieces.push_back(out.size(kFrameDim) == 0
                           ? Tensor()
                           : guided(fabric.device(group.ranks[static_cast<std::size_t>(i)]), out));
    }
  } else {
    const Tensor out = scheme.forward(fabric, group, members);  // on member 0
    check_prediction(out, whole[0].size(kFrameDim));
    const Tensor velocity = guided(fabric.device(group.ranks[0]), out);
    pieces =
        scatter(fabric, group, velocity, 0, kFrameDim, even_split(velocity.size(kFrameDim), k));
  }
  for (int i = 0; i < k; ++i) {
    Backend& be = fabric.device(group.ranks[static_cast<std::size_t>(i)]);
    Tensor& shard = latents_.shards[static_cast<std::size_t>(i)];
    if (shard.size(kFrameDim) == 0) continue;
    shard = add_scaled(be, shard, pieces[static_cast<std::size_t>(i)], dt);
  }
  ++step_;
}

}  // namespace ditserve
