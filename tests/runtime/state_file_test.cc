#include "runtime/state_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "io/safetensors.h"
#include "support/random.h"
#include "tensor/error.h"

namespace ditserve::runtime {
namespace {

using ::testing::HasSubstr;

GenerateRequest request() {
  GenerateRequest r;
  r.prompt = "a kite over the dunes";
  r.frames = 5;
  r.height = 32;
  r.width = 48;
  r.steps = 6;
  r.seed = 9;
  return r;
}

std::string rejection(const std::filesystem::path& path, const GenerateRequest& r, const Shape& shape,
                      const std::string& model = "tiny") {
  try {
    load_state(path, model, r, shape);
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "accepted";
}

// A host state of `r` after `step` steps with the given latents (captions are not saved).
GenerationState state_at(const GenerateRequest& r, const Tensor& latents, int step,
                         SamplerKind sampler = SamplerKind::rectified_flow) {
  SamplerOptions o;
  o.steps = r.steps;
  o.frames = r.frames;
  o.height = r.height;
  o.width = r.width;
  o.sampler = sampler;
  Tensor lengths = Tensor::empty_host({2}, DType::i32);
  lengths.data<std::int32_t>()[0] = lengths.data<std::int32_t>()[1] = 3;
  return GenerationState(latents, ditserve::testing::random_tensor({2, 3, 8}, 1), lengths, o,
                         static_cast<std::size_t>(step));
}

TEST(StateFile, RoundTripsAndRefusesAnotherRequest) {
  const auto path = std::filesystem::temp_directory_path() / "ditserve_state_file_test.state";
  const Shape shape{1, 4, 2, 4, 6};
  const Tensor latents = ditserve::testing::random_tensor(shape, 5);
  save_state(path, "tiny", request(), state_at(request(), latents, 4));
  const SavedState got = load_state(path, "tiny", request(), shape);
  EXPECT_EQ(got.step, 4);
  EXPECT_EQ(got.latents.to_vector_f32(), latents.to_vector_f32());  // bit-exact
  EXPECT_FALSE(got.unipc.has_value());  // rectified flow keeps no history

  GenerateRequest other = request();
  other.seed = 10;
  EXPECT_THAT(rejection(path, other, shape), HasSubstr("state_file"));
  EXPECT_THAT(rejection(path, other, shape), HasSubstr("seed"));
  other = request();
  other.guidance = 6.5f;
  EXPECT_THAT(rejection(path, other, shape), HasSubstr("guidance"));
  EXPECT_THAT(rejection(path, request(), {1, 4, 2, 4, 4}), HasSubstr("state_file"));
  EXPECT_THAT(rejection(path.string() + ".missing", request(), shape), HasSubstr("state_file"));
  std::filesystem::remove(path);
}

// A state written before the history was saved (format 1: latents and step) still
// resumes, without a history; another format does not.
TEST(StateFile, ReadsFormatOneWithoutHistory) {
  const auto path = std::filesystem::temp_directory_path() / "ditserve_state_file_v1.state";
  const Shape shape{1, 16, 2, 4, 6};
  const Tensor latents = ditserve::testing::random_tensor(shape, 5);
  const GenerateRequest r = request();
  std::map<std::string, std::string> meta = {
      {"format", "ditserve-job-state/1"}, {"model", "tiny-wan"}, {"prompt", r.prompt},
      {"frames", "5"}, {"height", "32"}, {"width", "48"}, {"steps", "6"},
      {"guidance", "0x1.cp+2"}, {"fps", "0x1.8p+4"}, {"seed", "9"}, {"step", "2"}};
  write_safetensors(path, {{"latents", latents}}, meta);
  const SavedState got = load_state(path, "tiny-wan", r, shape);
  EXPECT_EQ(got.step, 2);
  EXPECT_EQ(got.latents.to_vector_f32(), latents.to_vector_f32());
  EXPECT_FALSE(got.unipc.has_value());
  meta["format"] = "ditserve-job-state/9";
  write_safetensors(path, {{"latents", latents}}, meta);
  EXPECT_THAT(rejection(path, r, shape, "tiny-wan"), HasSubstr("format"));
  std::filesystem::remove(path);
}

// Wan's UniPC history is saved with the latents, bit for bit, and restored into the
// resumed state. Unset sampler and shift mean the model's (unipc, its shift), so a
// request spelling those out reads the same file; another sampler or shift does not.
TEST(StateFile, KeepsTheUniPCHistory) {
  const auto path = std::filesystem::temp_directory_path() / "ditserve_state_file_unipc.state";
  const Shape shape{1, 16, 2, 4, 6};
  GenerateRequest r = request();
  GenerationState state = state_at(r, ditserve::testing::random_tensor(shape, 5), 3, SamplerKind::unipc);
  FlowUniPC::History history;
  history.lower_order_nums = 2;
  history.this_order = 2;
  history.last_sample = ditserve::testing::random_tensor(shape, 6);
  history.x0 = {ditserve::testing::random_tensor(shape, 7), ditserve::testing::random_tensor(shape, 8)};
  state.restore_solver_history(history);
  save_state(path, "tiny-wan", r, state);

  GenerateRequest spelled = r;
  spelled.sampler = SamplerKind::unipc;
  spelled.shift = default_request(find_model("tiny-wan")).shift;
  const SavedState got = load_state(path, "tiny-wan", spelled, shape);
  EXPECT_EQ(got.step, 3);
  ASSERT_TRUE(got.unipc.has_value());
  EXPECT_EQ(got.unipc->lower_order_nums, 2);
  EXPECT_EQ(got.unipc->this_order, 2);
  EXPECT_EQ(got.unipc->last_sample.to_vector_f32(), history.last_sample.to_vector_f32());
  ASSERT_EQ(got.unipc->x0.size(), 2u);
  EXPECT_EQ(got.unipc->x0[0].to_vector_f32(), history.x0[0].to_vector_f32());
  EXPECT_EQ(got.unipc->x0[1].to_vector_f32(), history.x0[1].to_vector_f32());

  const std::unique_ptr<Backend> cpu = make_backend(Device::cpu(1));
  const GenerationState resumed = resume_state(got, state_at(r, state.latents(), 0, SamplerKind::unipc), *cpu);
  EXPECT_EQ(resumed.step_index(), 3u);
  EXPECT_EQ(resumed.latents().device(), cpu->device());
  ASSERT_TRUE(resumed.solver_history().has_value());
  EXPECT_EQ(resumed.solver_history()->x0[1].to_vector_f32(), history.x0[1].to_vector_f32());

  GenerateRequest other = r;
  other.sampler = SamplerKind::euler;
  try {
    load_state(path, "tiny-wan", other, shape);
    ADD_FAILURE() << "another sampler was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("sampler"));
  }
  other = r;
  other.shift = 3.0;
  try {
    load_state(path, "tiny-wan", other, shape);
    ADD_FAILURE() << "another shift was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("shift"));
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ditserve::runtime
