#pragma once
// Ulysses sequence parallelism (DeepSpeed-Ulysses) for full-attention DiTs: every member
// holds a shard of the token rows through the whole network; inside each self-attention
// an all_to_all turns row shards of q, k, v into head shards over the whole sequence,
// each member attends with its heads, and a second all_to_all turns the result back into
// row shards. Rows and heads follow even_split, so any group size works: a member may get
// fewer heads than another, or none (more members than heads), and then only relays.
// Group-free: the group may change from one forward (denoising step) to the next.

#include <vector>

#include "comm/fabric.h"
#include "parallel/guidance_parallel.h"
#include "parallel/token_stages.h"

namespace ditserve {

class UlyssesParallel {
 public:
  // members[i] is group member i's prepared evaluation, living on
  // fabric.device(group.ranks[i]); all were prepared from the same inputs. Returns the
  // prediction (members[0]->final's output) on the group's first member, equal to the
  // single-device forward up to rounding. Each member embeds the whole grid from its own
  // copy of the latents and keeps its rows; the rows are gathered to the first member for
  // the final layer. Throws InvalidArgument when the group is invalid or the members do
  // not match it or each other.
  Tensor forward(Fabric& fabric, const DeviceGroup& group,
                 const std::vector<FullAttentionStages*>& members);
};

// One denoising evaluation of a full-attention DiT on one device, the order the stages
// define (what UlyssesParallel computes on a group of one, without the collectives).
Tensor full_attention_forward(FullAttentionStages& stages);

// Classifier-free guidance parallelism for full-attention DiTs: the prompt's branch on the
// first half of the group (guidance_halves), the null caption's on the second, each with
// Ulysses inside its half. prompt / null hold the stages prepared on the members of each
// half. Both predictions are returned on the group's first member.
GuidedPrediction ulysses_guidance_forward(Fabric& fabric, const DeviceGroup& group,
                                          const std::vector<FullAttentionStages*>& prompt,
                                          const std::vector<FullAttentionStages*>& null);

}  // namespace ditserve
