#include "parallel/ulysses.h"

#include <string>

#include "comm/collectives.h"
#include "kernels/attention.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

void check_members(const Fabric& fabric, const DeviceGroup& group,
                   const std::vector<FullAttentionStages*>& members) {
  group.validate(fabric);
  DITSERVE_CHECK(members.size() == group.ranks.size(), "Ulysses step: ", members.size(),
                 " members' stages for a group of ", group.size());
  for (std::size_t i = 0; i < members.size(); ++i) {
    DITSERVE_CHECK(members[i] != nullptr, "Ulysses step: member ", i, " has no stages");
    const Device want = fabric.device(group.ranks[i]).device();
    DITSERVE_CHECK(members[i]->backend().device() == want, "Ulysses step: member ", i,
                   "'s stages run on ", members[i]->backend().device().str(), " but its rank ",
                   group.ranks[i], " is ", want.str());
    const FullAttentionStages& a = *members[i];
    const FullAttentionStages& b = *members[0];
    DITSERVE_CHECK(a.depth() == b.depth() && a.heads() == b.heads() &&
                       a.head_dim() == b.head_dim() && a.sequence_length() == b.sequence_length(),
                   "Ulysses step: member ", i, " (depth ", a.depth(), ", ", a.heads(), " heads of ",
                   a.head_dim(), ", ", a.sequence_length(),
                   " tokens) differs from member 0 (depth ", b.depth(), ", ", b.heads(),
                   " heads of ", b.head_dim(), ", ", b.sequence_length(), " tokens)");
  }
}

// Self-attention over the whole sequence for the heads in qkv [B, N, 3, h, D] (h may be 0).
Tensor attend(Backend& be, const Tensor& qkv) {
  if (qkv.size(3) == 0) return be.empty({qkv.size(0), qkv.size(1), 0, qkv.size(4)}, qkv.dtype());
  return attention(be, qkv.select(2, 0), qkv.select(2, 1), qkv.select(2, 2));
}

}  // namespace

Tensor full_attention_forward(FullAttentionStages& stages) {
  Backend& be = stages.backend();
  Tensor x = stages.embed();
  for (std::int64_t b = 0; b < stages.depth(); ++b) {
    x = stages.finish_block(b, x, attend(be, stages.attention_inputs(b, x, 0)));
  }
  return stages.final(x);
}

Tensor UlyssesParallel::forward(Fabric& fabric, const DeviceGroup& group,
                                const std::vector<FullAttentionStages*>& members) {
  check_members(fabric, group, members);
  if (group.size() == 1) return full_attention_forward(*members[0]);
  const int k = group.size();
  const std::size_t n = members.size();
  const std::vector<std::int64_t> rows = even_split(members[0]->sequence_length(), k);
  const std::vector<std::int64_t> heads = even_split(members[0]->heads(), k);
  std::vector<std::int64_t> first(n, 0);
  for (std::size_t i = 1; i < n; ++i) first[i] = first[i - 1] + rows[i - 1];

  std::vector<Tensor> x(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Tensor grid = members[i]->embed();
    DITSERVE_CHECK(grid.dim() == 3 && grid.size(1) == members[i]->sequence_length(),
                   "Ulysses step: member ", i, " embedded ", grid.describe(), " for ",
                   members[i]->sequence_length(), " tokens");
    x[i] = grid.narrow(1, first[i], rows[i]);
  }

  for (std::int64_t b = 0; b < members[0]->depth(); ++b) {
    std::vector<Tensor> qkv(n);
    for (std::size_t i = 0; i < n; ++i) {
      FullAttentionStages& m = *members[i];
      qkv[i] = rows[i] > 0
                   ? m.attention_inputs(b, x[i], first[i])
                   : m.backend().empty({x[i].size(0), 0, 3, m.heads(), m.head_dim()}, x[i].dtype());
    }
    // [B, n_i, 3, H, D] row shards -> [B, N, 3, h_j, D] head shards.
    qkv = all_to_all(fabric, group, qkv, /*split_dim=*/3, heads, /*concat_dim=*/1);
    std::vector<Tensor> attended(n);
    for (std::size_t i = 0; i < n; ++i) attended[i] = attend(members[i]->backend(), qkv[i]);
    qkv.clear();
    // [B, N, h_j, D] -> [B, n_i, H, D].
    attended = all_to_all(fabric, group, attended, /*split_dim=*/1, rows, /*concat_dim=*/2);
    for (std::size_t i = 0; i < n; ++i) {
      if (rows[i] > 0) x[i] = members[i]->finish_block(b, x[i], attended[i]);
    }
  }
  return members[0]->final(gather(fabric, group, x, /*dim=*/1, /*root=*/0));
}

GuidedPrediction ulysses_guidance_forward(Fabric& fabric, const DeviceGroup& group,
                                          const std::vector<FullAttentionStages*>& prompt,
                                          const std::vector<FullAttentionStages*>& null) {
  group.validate(fabric);
  const auto [prompt_group, null_group] = guidance_halves(group);
  UlyssesParallel scheme;
  GuidedPrediction out;
  out.cond = scheme.forward(fabric, prompt_group, prompt);
  const Tensor uncond = scheme.forward(fabric, null_group, null);
  const int root = group.ranks[0];
  out.uncond = fabric.device(root).empty(uncond.shape(), uncond.dtype());
  fabric.copy(null_group.ranks[0], uncond, root, out.uncond);
  return out;
}

}  // namespace ditserve
