#include "models/graphed_transformer.h"

#include <iostream>
#include <sstream>
#include <utility>

#include "kernels/copy.h"
#include "tensor/error.h"

namespace ditserve {

struct GraphedTransformer::Entry {
  std::string key;
  bool ran_eagerly = false;  // the first call (plans, tables, workspace) is done
  bool eager_only = false;   // its capture failed
  Shape output_shape;        // from the eager call
  DType output_dtype = DType::f32;
  DenoiseInputs inputs;  // static: the tensors the capture reads
  Tensor output;         // static: the tensor the capture writes
  // Last, so it goes first: the graph reads `inputs` and writes `output`.
  std::unique_ptr<CapturedWork> work;
};

namespace {

void describe_tensor(std::ostringstream& os, const char* name, const Tensor& t) {
  os << name << "=" << dtype_name(t.dtype()) << shape_str(t.shape()) << " ";
}

// Everything a capture bakes in. fps in hexadecimal: equal keys mean equal bits.
std::string key_of(const DenoiseInputs& in) {
  std::ostringstream os;
  describe_tensor(os, "latents", in.latents);
  describe_tensor(os, "timesteps", in.timesteps);
  describe_tensor(os, "captions", in.captions);
  describe_tensor(os, "caption_lengths", in.caption_lengths);
  os << "fps=" << std::hexfloat << in.fps << std::defaultfloat << " height=" << in.height
     << " width=" << in.width;
  return os.str();
}

Tensor empty_like(Backend& be, const Tensor& t) { return be.empty(t.shape(), t.dtype()); }

}  // namespace

GraphedTransformer::GraphedTransformer(DiffusionTransformer& model, Backend& be,
                                       GraphedTransformerOptions options)
    : model_(model), be_(be), options_(options) {
  DITSERVE_CHECK(options_.max_graphs >= 1, "GraphedTransformer: max_graphs must be >= 1, got ",
                 options_.max_graphs);
}

GraphedTransformer::~GraphedTransformer() = default;

Tensor GraphedTransformer::run_eagerly(const DenoiseInputs& inputs) {
  ++stats_.eager_calls;
  return model_.forward(inputs);
}

Tensor GraphedTransformer::forward(const DenoiseInputs& in) {
  const bool here = in.latents.defined() && in.timesteps.defined() && in.captions.defined() &&
                    in.caption_lengths.defined() && in.latents.device() == be_.device() &&
                    in.timesteps.device() == be_.device() && in.captions.device() == be_.device() &&
                    in.caption_lengths.device() == be_.device();
  // Inputs the model will refuse: its own error, with nothing cached.
  if (!here) return run_eagerly(in);

  const std::string key = key_of(in);
  auto it = entries_.begin();
  while (it != entries_.end() && it->key != key) ++it;
  if (it != entries_.end()) {
    entries_.splice(entries_.begin(), entries_, it);  // most recently used
  } else {
    if (entries_.size() >= options_.max_graphs) {
      entries_.pop_back();  // waits for its replays, then frees its graph's memory
      ++stats_.evictions;
    }
    entries_.emplace_front();
    entries_.front().key = key;
  }
  Entry& e = entries_.front();

  if (e.eager_only) return run_eagerly(in);
  if (!e.ran_eagerly) {
    Tensor out;
    try {
      out = run_eagerly(in);
    } catch (...) {
      entries_.pop_front();  // a call the model refused leaves no key behind
      throw;
    }
    e.ran_eagerly = true;
    e.output_shape = out.shape();
    e.output_dtype = out.dtype();
    return out;
  }

  const auto copy_inputs = [&] {
    copy_into(be_, e.inputs.latents, in.latents);
    copy_into(be_, e.inputs.timesteps, in.timesteps);
    copy_into(be_, e.inputs.captions, in.captions);
    copy_into(be_, e.inputs.caption_lengths, in.caption_lengths);
  };
  if (!e.work) {
    e.inputs = in;  // fps, height, width
    e.inputs.latents = empty_like(be_, in.latents);
    e.inputs.timesteps = empty_like(be_, in.timesteps);
    e.inputs.captions = empty_like(be_, in.captions);
    e.inputs.caption_lengths = empty_like(be_, in.caption_lengths);
    e.output = be_.empty(e.output_shape, e.output_dtype);
    copy_inputs();
    Entry* entry = &e;
    try {
      e.work = capture_work(be_, [this, entry] {
        const Tensor out = model_.forward(entry->inputs);
        DITSERVE_CHECK(out.shape() == entry->output.shape() && out.dtype() == entry->output.dtype(),
                       "GraphedTransformer: the model returned ", out.describe(),
                       " for inputs that gave ", entry->output.describe(), " before");
        copy_into(be_, entry->output, out);
      });
    } catch (const Error& error) {
      ++stats_.capture_failures;
      stats_.last_failure = key + ": " + error.what();
      e.eager_only = true;
      e.inputs = {};
      e.output = Tensor();
      const std::string message = "GraphedTransformer: capturing the step for " + key +
                                  " failed; it runs eagerly from now on: " + error.what();
      if (options_.on_capture_failure == GraphedTransformerOptions::OnCaptureFailure::rethrow)
        throw Error(message);
      std::cerr << "ditserve: " << message << "\n";
      return run_eagerly(in);
    }
    ++stats_.captures;
    // On CUDA the capture ran nothing; on the CPU it ran once already. Replaying either way
    // keeps the two backends' semantics one.
  } else {
    copy_inputs();
  }
  e.work->replay();
  ++stats_.replays;
  Tensor result = be_.empty(e.output.shape(), e.output.dtype());
  copy_into(be_, result, e.output);
  return result;
}

DiffusionTransformer& unwrap_graphed(DiffusionTransformer& dit) {
  auto* graphed = dynamic_cast<GraphedTransformer*>(&dit);
  return graphed != nullptr ? graphed->wrapped() : dit;
}

const DiffusionTransformer& unwrap_graphed(const DiffusionTransformer& dit) {
  const auto* graphed = dynamic_cast<const GraphedTransformer*>(&dit);
  return graphed != nullptr ? graphed->wrapped() : dit;
}

}  // namespace ditserve
